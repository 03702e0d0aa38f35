"""The checkpoint and camera frames the latency benchmarks (node_latency, inference_backends) measure."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np


def synthetic_frames(count: int) -> list[np.ndarray]:
    """640x480 synthetic road frames, the same every run."""
    from qattn_ros.data.synthetic import RoadGenerator

    generator = RoadGenerator(480, 640, seed=3)
    return [generator.frame(i).image for i in range(count)]


def make_checkpoint(folder: Path) -> str:
    """An untrained quant_sign checkpoint in `folder`: a trained one's compute, without training."""
    import torch

    from qattn_ros.core.preprocess import Preprocessing
    from qattn_ros.model import ModelConfig, SteeringNet
    from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint

    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="quant_sign")).eval()
    model.calibrate(torch.randn(8, 3, 80, 160))
    info = CheckpointInfo(model.config, Preprocessing(), "sim_normalized", False)
    return str(save_checkpoint(folder / "bench", model, info))


def exported_copy(checkpoint: str | None, folder: Path) -> str:
    """The checkpoint (default: an untrained quant_sign) copied into `folder` and exported there, never beside
    the original; returns the copy's .safetensors, its model.onnx beside it."""
    if checkpoint is None:
        copy = Path(make_checkpoint(folder))
    else:
        weights = Path(checkpoint).with_suffix(".safetensors")
        for path in (weights, weights.with_suffix(".json")):
            shutil.copy(path, folder / f"model{path.suffix}")
        copy = folder / "model.safetensors"
    from qattn_ros.inference.export import export_checkpoint

    export_checkpoint(copy)
    return str(copy)
