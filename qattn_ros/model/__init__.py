"""Steering network with quantized sign-bit attention (torch only, no ROS, no data code)."""

from .config import VARIANTS, ModelConfig
from .network import SteeringNet, SteeringOutput

__all__ = ["VARIANTS", "ModelConfig", "SteeringNet", "SteeringOutput"]
