"""Small untrained checkpoints for the tests that need one (replay, simulator, the evaluation work, the node)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from qattn_ros.core.preprocess import Preprocessing
from qattn_ros.core.units import DEFAULT_VEHICLE, VehicleGeometry
from qattn_ros.inference.predictor import SteeringPredictor
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint


def random_checkpoint(folder: Path, seed: int = 0, vehicle: VehicleGeometry = DEFAULT_VEHICLE) -> str:
    """quant_sign with seeded random weights, calibrated; labels in steering-wheel rad, positive left."""
    torch.manual_seed(seed)
    model = SteeringNet(ModelConfig(variant="quant_sign")).eval()
    model.calibrate(torch.randn(8, 3, 80, 160))
    info = CheckpointInfo(model=model.config, preprocessing=Preprocessing(), steering_unit="steering_wheel_rad",
                          positive_is_left=True, vehicle=vehicle)  # fmt: skip
    return str(save_checkpoint(Path(folder) / "model", model, info))


def overflowing_recurrent_checkpoint(folder: Path, normal: np.ndarray, trigger: np.ndarray) -> str:
    """A recurrent kim_canny (wheel_rad) whose state moves its output well above float noise and whose output
    overflows float32 (inf) on `trigger` after two `normal` frames, while `normal` frames, fresh or after one
    other, stay finite: a non-finite prediction in the middle of a sequence."""
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="kim_canny", recurrent=True)).eval()
    hidden = model.config.hidden_dim
    with torch.no_grad():
        model.state_input.weight.mul_(20)
        model.cell.weight_hh.mul_(4)
        model.head[1].weight[:, -hidden:] *= 20
        model.head[1].weight[:, :-hidden] *= 10  # the image moves the output by ~1 %
    info = CheckpointInfo(model=model.config, preprocessing=Preprocessing(), steering_unit="wheel_rad",
                          positive_is_left=True)  # fmt: skip
    probe = SteeringPredictor(save_checkpoint(Path(folder) / "probe", model, info), "cpu")
    finite = max(abs(probe.predict(normal).steering) for _ in range(2))
    overflow = abs(probe.predict(trigger).steering)
    assert overflow > 1.005 * finite, (overflow, finite)
    scale = 2 / (finite + overflow)  # the last layer's output: below 1 on normal frames, above 1 on the trigger
    with torch.no_grad():
        model.head[-1].weight.mul_(scale)
        model.head[-1].bias.mul_(scale)
        model.target_std.fill_(torch.finfo(torch.float32).max)
    return str(save_checkpoint(Path(folder) / "overflow", model, info))
