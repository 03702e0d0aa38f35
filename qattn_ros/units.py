"""Steering units and sign conventions, and conversion to REP-103 (radians, positive left).

Each data source states its unit; checkpoints record unit and sign so that consumers
convert instead of assuming.
"""

from __future__ import annotations

import math

from .model.config import ConfigError

# unit name -> multiplier to the front-wheel angle in radians (before the sign flip)
UNITS = {
    "wheel_rad": 1.0,  # front-wheel angle, radians
    "sim_normalized": math.radians(25.0),  # Udacity simulator: [-1, 1] x 25 degrees
    "steering_wheel_rad": None,  # steering-wheel angle; divide by the steering ratio
    "curvature": None,  # 1/m; atan(wheelbase * curvature)
}


def to_wheel_angle(
    value: float, unit: str, positive_is_left: bool, steering_ratio: float = 14.8, wheelbase: float = 2.85
) -> float:
    """A steering value in `unit` -> front-wheel angle in radians, positive left (REP-103)."""
    if unit not in UNITS:
        raise ConfigError(f"steering_unit: unknown unit {unit!r}; expected one of {', '.join(UNITS)}")
    if unit == "steering_wheel_rad":
        angle = value / steering_ratio
    elif unit == "curvature":
        angle = math.atan(wheelbase * value)
    else:
        angle = value * UNITS[unit]
    return angle if positive_is_left else -angle


def from_wheel_angle(
    angle_left: float, unit: str, positive_is_left: bool, steering_ratio: float = 14.8, wheelbase: float = 2.85
) -> float:
    """Inverse of `to_wheel_angle`."""
    if unit not in UNITS:
        raise ConfigError(f"steering_unit: unknown unit {unit!r}; expected one of {', '.join(UNITS)}")
    angle = angle_left if positive_is_left else -angle_left
    if unit == "steering_wheel_rad":
        return angle * steering_ratio
    if unit == "curvature":
        return math.tan(angle) / wheelbase
    return angle / UNITS[unit]
