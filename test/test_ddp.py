"""DDP on 2 gloo processes computes the same training as one process with 2 micro-batches.

Rank r of W trains on batch[r::W]; one process with accumulation W trains on the same
micro-batches, so BatchNorm statistics and averaged gradients agree. The check is
relative: the DDP run must be far closer to that reference than a run that differs only
in BatchNorm batching (one 32-frame batch instead of two 16-frame micro-batches).
"""

import os
import subprocess
import sys

import pytest
from conftest import ROOT, small_train_overrides
from torch.nn.utils import parameters_to_vector

from qattn_ros.fit.config import load_train_config
from qattn_ros.fit.trainer import Trainer
from qattn_ros.model.checkpoint import load_checkpoint

# Deterministic training: no dropout, no augmentation; SGD, since Adam normalizes each gradient
# entry and so magnifies float rounding in near-zero entries (ranks sum in another order).
SETTINGS = [
    "model.variant=kim_canny", "model.head_dropout=0.0",
    "augment.flip=0.0", "augment.brightness=0.0", "augment.shift_px=0",
    "optim.epochs=2", "optim.batch_size=32", "optim.max_steps_per_epoch=2", "optim.lr=0.01", "optim.optimizer=sgd",
]  # fmt: skip


def _train_in_process(logs, out, cache, extra):
    Trainer(load_train_config(None, small_train_overrides(logs, out, cache) + SETTINGS + extra)).fit()
    return parameters_to_vector(load_checkpoint(out / "last")[0].parameters())


@pytest.mark.slow
def test_ddp_matches_single_process(synthetic_logs, tmp_path) -> None:
    cache = tmp_path.parent / "cache"
    reference = _train_in_process(synthetic_logs, tmp_path / "single", cache, ["optim.accumulation=2"])
    other_batching = _train_in_process(synthetic_logs, tmp_path / "onebatch", cache, [])

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(ROOT / "training" / "train.py"), str(ROOT / "config" / "train" / "synthetic.yaml")]  # fmt: skip
    for assignment in small_train_overrides(synthetic_logs, tmp_path / "ddp", cache) + SETTINGS:
        command += ["--set", assignment]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    model, info = load_checkpoint(tmp_path / "ddp" / "last")
    ddp = parameters_to_vector(model.parameters())

    assert info.training["step"] == 4
    assert float((ddp - reference).norm()) < 1e-4 * float(reference.norm())
    assert float((ddp - reference).norm()) < 0.1 * float((other_batching - reference).norm())
