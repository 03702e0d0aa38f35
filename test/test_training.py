"""Real training runs on a small synthetic set, through the same code path as training/train.py."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import small_train_overrides

from qattn_ros.fit.config import load_train_config
from qattn_ros.fit.trainer import Trainer
from qattn_ros.model import VARIANTS
from qattn_ros.model.checkpoint import load_checkpoint

FAST = ["optim.epochs=4", "optim.batch_size=32", "optim.lr=0.002", "augment.shift_px=0"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_learns_the_steering(variant, synthetic_logs, tmp_path) -> None:
    overrides = small_train_overrides(synthetic_logs, tmp_path / "run", tmp_path.parent / "cache") + FAST
    config = load_train_config(None, overrides + [f"model.variant={variant}"])
    best = Trainer(config).fit()
    model, info = load_checkpoint(best)
    metrics = info.metrics
    assert metrics["rmse"] <= metrics["mean_baseline_rmse"] / 3, metrics
    assert info.steering_unit == "sim_normalized" and info.positive_is_left is False
    assert info.model.variant == variant and info.data["train_frames"] == 1200
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 4


def test_resume_continues_from_the_last_epoch(synthetic_logs, tmp_path) -> None:
    overrides = small_train_overrides(synthetic_logs, tmp_path / "run", tmp_path.parent / "cache") + FAST
    overrides += ["model.variant=kim_canny", "optim.max_steps_per_epoch=5"]
    Trainer(load_train_config(None, overrides + ["optim.epochs=1"])).fit()
    first, _ = load_checkpoint(tmp_path / "run" / "last")
    resumed = Trainer(load_train_config(None, overrides + ["optim.epochs=2"]))
    assert resumed.epoch == 1 and resumed.step == 5
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), resumed.model.state_dict().values()))
    assert resumed.optimizer.state_dict()["state"], "optimizer moments restored"
    resumed.fit()
    _, info = load_checkpoint(tmp_path / "run" / "last")
    assert [h["epoch"] for h in info.training["history"]] == [1, 2]


def test_training_on_simulator_logs_needs_neither_rosbags_nor_captum(synthetic_logs, tmp_path) -> None:
    """As on a GPU box or container with torch only: the bag readers and captum are never imported."""
    overrides = small_train_overrides(synthetic_logs, tmp_path / "run", tmp_path / "cache") + FAST
    overrides += ["model.variant=quant_sign", "optim.epochs=1", "optim.max_steps_per_epoch=3"]
    script = f"""
import sys
sys.modules["rosbags"] = sys.modules["captum"] = None  # any import of them now raises ImportError
from qattn_ros.fit.config import load_train_config
from qattn_ros.fit.trainer import Trainer
from qattn_ros.predictor import SteeringPredictor
best = Trainer(load_train_config(None, {overrides!r})).fit()
print("steering", SteeringPredictor(best, "cpu").predict_batch(__import__("numpy").zeros((1, 80, 160, 3), "uint8"))[0])
try:
    import rosbags  # noqa: F401
except ImportError:
    print("rosbags blocked")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rosbags blocked" in done.stdout and "steering [" in done.stdout
    assert (tmp_path / "run" / "best.safetensors").is_file()
