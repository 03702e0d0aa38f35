"""Steering network with quantized sign-bit attention (torch only, no ROS, no data code)."""

from .config import VARIANTS, ConfigError, ModelConfig
from .network import SteeringNet, SteeringOutput

__all__ = ["VARIANTS", "ConfigError", "ModelConfig", "SteeringNet", "SteeringOutput"]
