"""A small untrained checkpoint for the tests that need one (replay, simulator, the evaluation work)."""

from __future__ import annotations

from pathlib import Path

import torch

from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint
from qattn_ros.preprocess import Preprocessing
from qattn_ros.units import DEFAULT_VEHICLE, VehicleGeometry


def random_checkpoint(folder: Path, seed: int = 0, vehicle: VehicleGeometry = DEFAULT_VEHICLE) -> str:
    """quant_sign with seeded random weights, calibrated; labels in steering-wheel rad, positive left."""
    torch.manual_seed(seed)
    model = SteeringNet(ModelConfig(variant="quant_sign")).eval()
    model.calibrate(torch.randn(8, 3, 80, 160))
    info = CheckpointInfo(model=model.config, preprocessing=Preprocessing(), steering_unit="steering_wheel_rad",
                          positive_is_left=True, vehicle=vehicle)  # fmt: skip
    return str(save_checkpoint(Path(folder) / "model", model, info))
