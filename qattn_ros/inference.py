"""One inference path for evaluation, the demo and the ROS node: checkpoint + preprocessing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .model.checkpoint import load_checkpoint
from .model.network import RecurrentState
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
        self.state: RecurrentState | None = None

    def _inputs(self, images_uint8: np.ndarray) -> torch.Tensor:
        # copy: cached frames are read-only memmaps
        return self.preprocessing.normalize(torch.from_numpy(np.array(images_uint8)).to(self.device))

    @torch.no_grad()
    def predict_model_batch(self, images_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(B, h, w, 3) preprocessed uint8 -> steering (B,) and attention (B, h/8, w/8) or None; frames independent."""
        out = self.model(self._inputs(images_uint8))
        attention = out.attention.cpu().numpy() if out.attention is not None else None
        return out.steering.cpu().numpy(), attention

    @torch.no_grad()
    def predict(self, rgb: np.ndarray) -> Prediction:
        """One camera frame (H, W, 3) RGB uint8 -> prediction; a recurrent model keeps its state for the next frame."""
        out = self.model(self._inputs(self.preprocessing.to_model_uint8(rgb)[None]), self.state)
        self.state = out.state
        value = float(out.steering[0])
        angle = to_wheel_angle(
            value, self.info.steering_unit, self.info.positive_is_left, self.steering_ratio, self.wheelbase
        )
        return Prediction(value, angle, out.attention[0].cpu().numpy() if out.attention is not None else None)

    def reset(self) -> None:
        """Forget the recurrent state (a new sequence starts)."""
        self.state = None
