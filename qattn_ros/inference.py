"""One inference path for evaluation, the demo and the ROS node: checkpoint + preprocessing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .model.checkpoint import CheckpointInfo, load_checkpoint
from .preprocess import Preprocessing
from .units import to_wheel_angle


@dataclass
class Prediction:
    steering: float  # checkpoint unit
    wheel_angle: float  # front-wheel angle, rad, positive left (REP-103)
    attention: np.ndarray | None  # (h, w) over the model input, sums to 1


class SteeringPredictor:
    def __init__(
        self, checkpoint: str, device: str | torch.device = "cpu", steering_ratio: float = 14.8, wheelbase: float = 2.85
    ) -> None:
        self.device = torch.device(device)
        self.steering_ratio, self.wheelbase = steering_ratio, wheelbase
        self.model, self.info = load_checkpoint(checkpoint, self.device)
        self.preprocessing = Preprocessing.from_dict(self.info.preprocessing)

    @property
    def checkpoint(self) -> CheckpointInfo:
        return self.info

    @torch.no_grad()
    def predict_model_batch(self, images_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(B, h, w, 3) preprocessed uint8 -> steering (B,) and attention (B, h/8, w/8) or None."""
        x = self.preprocessing.normalize(
            torch.from_numpy(np.array(images_uint8)).to(self.device)
        )  # copy: memmaps are read-only
        out = self.model(x)
        attention = out.attention.cpu().numpy() if out.attention is not None else None
        return out.steering.cpu().numpy(), attention

    def predict(self, rgb: np.ndarray) -> Prediction:
        """One camera frame (H, W, 3) RGB uint8 -> prediction."""
        steering, attention = self.predict_model_batch(self.preprocessing.to_model_uint8(rgb)[None])
        value = float(steering[0])
        angle = to_wheel_angle(
            value, self.info.steering_unit, self.info.positive_is_left, self.steering_ratio, self.wheelbase
        )
        return Prediction(value, angle, attention[0] if attention is not None else None)
