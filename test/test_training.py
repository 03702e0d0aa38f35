"""Real training runs on a small synthetic set, through the same code path as training/train.py."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, small_train_overrides
from processes import finish, output, spawn
from safetensors import safe_open

from qattn_ros.core.errors import ConfigError
from qattn_ros.data.simlog import SimLogSource
from qattn_ros.fit.config import load_train_config
from qattn_ros.fit.trainer import Trainer
from qattn_ros.inference.predictor import SteeringPredictor
from qattn_ros.model import VARIANTS
from qattn_ros.model.checkpoint import load_checkpoint

FAST = ["optim.epochs=4", "optim.batch_size=32", "optim.lr=0.002", "augment.shift_px=0"]


@pytest.mark.slow
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
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), resumed.kept.state_dict().values()))
    assert not all(
        torch.equal(a, b) for a, b in zip(first.state_dict().values(), resumed.model.state_dict().values())
    ), "the raw weights, not the average, continue training"
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
from qattn_ros.inference.predictor import SteeringPredictor
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


def _train_process(overrides: list[str]) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "training" / "train.py"), str(ROOT / "config" / "train" / "synthetic.yaml")]
    for assignment in overrides:
        command += ["--set", assignment]
    return spawn(command)


def _saved_epoch(out) -> int | None:
    """The epoch `last` holds once its checkpoint and its resume state (same step) are both in place."""
    try:
        training = json.loads((out / "last.json").read_text())["training"]
        with safe_open(str(out / "last.optimizer.safetensors"), "pt") as handle:
            step = int((handle.metadata() or {})["step"])
    except (OSError, ValueError, KeyError):
        return None
    return training["epoch"] if step == training["step"] else None


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(synthetic_logs, tmp_path) -> None:
    """SIGKILL during epoch 2, then run again: the weights equal an uninterrupted run's, dropout and all."""
    settings = ["model.variant=quant_sign", "model.rest_dropout=0.5", "model.head_dropout=0.2", "optim.epochs=2",
                "optim.batch_size=32", "optim.max_steps_per_epoch=12", "augment.shift_px=2"]  # fmt: skip

    def overrides(out):
        return small_train_overrides(synthetic_logs, out, tmp_path / "cache") + settings

    whole = _train_process(overrides(tmp_path / "whole"))
    assert whole.wait(timeout=600) == 0, output(whole)[-2000:]
    killed = _train_process(overrides(tmp_path / "killed"))
    history = tmp_path / "killed" / "last.json"
    end = time.monotonic() + 600
    while killed.poll() is None and time.monotonic() < end and _saved_epoch(tmp_path / "killed") != 1:
        time.sleep(0.02)  # waits for a condition: epoch 1 completely saved (checkpoint and resume state)
    assert killed.poll() is None, "still running (in epoch 2) when killed"
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    saved = json.loads(history.read_text())["training"]
    assert saved["epoch"] == 1
    resumed = _train_process(overrides(tmp_path / "killed"))
    log = finish(resumed, 600)
    assert resumed.returncode == 0, log[-2000:]
    final = json.loads(history.read_text())["training"]["history"]
    assert final[0] == saved["history"][0], "epoch 1 was not trained again (its timing is the killed run's)"
    for name in ("last", "best"):
        a, _ = load_checkpoint(tmp_path / "whole" / name)
        b, _ = load_checkpoint(tmp_path / "killed" / name)
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values())), name


def test_recurrent_sequences_and_the_attention_regularizers_train(synthetic_logs, tmp_path) -> None:
    """seq_len > 1 feeds consecutive frames to the LSTM; the entropy penalty sharpens the attention."""
    base = small_train_overrides(synthetic_logs, tmp_path / "rnn", tmp_path / "cache") + [
        "model.variant=kim_canny", "model.recurrent=true", "model.regularizer=doubly_stochastic",
        "model.reg_weight=0.1", "optim.seq_len=3", "optim.epochs=1", "optim.max_steps_per_epoch=4",
        "optim.batch_size=16",
    ]  # fmt: skip
    trainer = Trainer(load_train_config(None, base))
    assert trainer.starts.max() == len(trainer.train_set) - 3, "a sequence never runs past the last frame"
    best = trainer.fit()
    _, info = load_checkpoint(best)
    assert info.model.recurrent and info.training["config"]["optim"]["seq_len"] == 3

    def mean_entropy(weight: float) -> float:
        out = tmp_path / f"entropy_{weight}"
        config = load_train_config(None, small_train_overrides(synthetic_logs, out, tmp_path / "cache") + [
            "model.variant=kim_canny", "model.regularizer=entropy", f"model.reg_weight={weight}", "optim.epochs=1",
            "optim.max_steps_per_epoch=15", "optim.batch_size=32", "seed=3",
            "optim.ema_decay=0",  # 15 steps: the raw weights, not an average that still remembers the first
        ])  # fmt: skip
        predictor = SteeringPredictor(Trainer(config).fit(), "cpu")
        images = predictor.frames(SimLogSource(synthetic_logs["val"]), tmp_path / "cache", 64).images
        alpha = torch.from_numpy(predictor.predict_batch(images)[1]).flatten(1)
        return float(-(alpha * alpha.clamp_min(1e-12).log()).sum(1).mean())

    assert mean_entropy(5.0) < mean_entropy(0.0) - 0.05, "the penalty makes the attention more peaked"


def test_the_kept_model_is_the_exponential_moving_average_of_the_weights(synthetic_logs, tmp_path) -> None:
    """best/last hold W_ema = d W_ema + (1 - d) W_step after every step (the first step copies)."""
    decay = 0.7
    overrides = small_train_overrides(synthetic_logs, tmp_path / "run", tmp_path.parent / "cache") + FAST
    overrides += [
        "model.variant=kim_canny",
        "optim.epochs=1",
        "optim.max_steps_per_epoch=4",
        f"optim.ema_decay={decay}",
    ]
    trainer = Trainer(load_train_config(None, overrides))
    expected: dict[str, torch.Tensor] = {}
    step = trainer.optimizer.step

    def step_and_average(*args, **kwargs):
        step(*args, **kwargs)
        for name, value in trainer.model.state_dict().items():
            if value.is_floating_point():
                expected[name] = value.clone() if name not in expected else decay * expected[name] + (1 - decay) * value

    trainer.optimizer.step = step_and_average
    trainer.fit()
    best, _ = load_checkpoint(tmp_path / "run" / "best")
    saved = best.state_dict()
    assert all(torch.allclose(saved[name], value, atol=1e-6) for name, value in expected.items())
    raw = trainer.model.state_dict()
    assert not all(torch.equal(saved[name], raw[name]) for name in expected), "the average is not the raw weights"
    with pytest.raises(ConfigError, match="ema_decay"):
        Trainer(load_train_config(None, overrides + ["optim.ema_decay=1.0"]))


def test_a_resume_state_of_another_step_than_last_is_not_restored(tmp_path, capsys) -> None:
    """The resume file is committed after `last`: one of step 5 beside a `last` of step 6 (a stop in between) is
    another run's moments, random state and raw weights; they start afresh, with a warning. Of step 5: restored."""
    from qattn_ros.fit.resume import restore_resume_state, save_resume_state

    cpu = torch.device("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, raw = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)  # raw: the weights an average stands in for
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        model(torch.randn(4, 3)).sum().backward()
        optimizer.step()
        saved_moment = optimizer.state_dict()["state"][0]["exp_avg"].clone()
        saved_rng = torch.get_rng_state()
        save_resume_state(tmp_path, 5, optimizer, raw, cpu, lambda: tmp_path / "last")

        torch.manual_seed(123)
        rng, weights = torch.get_rng_state(), model.weight.detach().clone()
        fresh = torch.optim.Adam(model.parameters(), lr=0.1)
        restore_resume_state(tmp_path, 6, fresh, model, cpu)
        assert fresh.state_dict()["state"] == {}, "no moments of step 5"
        assert torch.equal(torch.get_rng_state(), rng) and torch.equal(model.weight, weights)
        assert "is from step 5" in capsys.readouterr().out

        restore_resume_state(tmp_path, 5, fresh, model, cpu)
        assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], saved_moment)
        assert torch.equal(torch.get_rng_state(), saved_rng) and torch.equal(model.weight, raw.weight)
