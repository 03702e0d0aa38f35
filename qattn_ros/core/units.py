"""Steering units, sign conventions and the vehicle geometry that links them (REP-103: radians, positive left).

Each data source states its unit; a checkpoint records its unit, sign and the geometry its
labels were converted with, so that consumers convert instead of assuming.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .config_mapping import from_mapping
from .errors import ConfigError

# unit name -> multiplier to the front-wheel angle in radians (None: needs the vehicle geometry)
UNITS = {
    "wheel_rad": 1.0,  # front-wheel angle, radians
    "sim_normalized": math.radians(25.0),  # Udacity simulator: [-1, 1] x 25 degrees
    "steering_wheel_rad": None,  # steering-wheel angle; divide by the steering ratio
    "curvature": None,  # 1/m; atan(wheelbase * curvature)
}


@dataclass(frozen=True)
class VehicleGeometry:
    """What converts steering-wheel angle and curvature to the front-wheel angle."""

    steering_ratio: float = 14.8  # steering-wheel angle / front-wheel angle (Udacity's Lincoln MKZ)
    wheelbase: float = 2.85  # m (Lincoln MKZ)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.steering_ratio) and self.steering_ratio > 0):
            raise ConfigError(f"vehicle.steering_ratio: must be a positive number, got {self.steering_ratio!r}")
        if not (math.isfinite(self.wheelbase) and self.wheelbase > 0):
            raise ConfigError(f"vehicle.wheelbase: must be a positive number of metres, got {self.wheelbase!r}")

    @classmethod
    def from_dict(cls, data: dict | None) -> VehicleGeometry:
        return from_mapping(cls, data, "vehicle")

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_VEHICLE = VehicleGeometry()


def check_unit(unit: str) -> str:
    if unit not in UNITS:
        raise ConfigError(f"steering_unit: unknown unit {unit!r}; expected one of {', '.join(UNITS)}")
    return unit


def to_wheel_angle(
    value: float, unit: str, positive_is_left: bool, vehicle: VehicleGeometry = DEFAULT_VEHICLE
) -> float:
    """A steering value in `unit` -> front-wheel angle in radians, positive left (REP-103)."""
    check_unit(unit)
    if unit == "steering_wheel_rad":
        angle = value / vehicle.steering_ratio
    elif unit == "curvature":
        angle = math.atan(vehicle.wheelbase * value)
    else:
        angle = value * UNITS[unit]
    return angle if positive_is_left else -angle


def from_wheel_angle(
    angle_left: float, unit: str, positive_is_left: bool, vehicle: VehicleGeometry = DEFAULT_VEHICLE
) -> float:
    """Inverse of `to_wheel_angle`."""
    check_unit(unit)
    angle = angle_left if positive_is_left else -angle_left
    if unit == "steering_wheel_rad":
        return angle * vehicle.steering_ratio
    if unit == "curvature":
        return math.tan(angle) / vehicle.wheelbase
    return angle / UNITS[unit]


def yaw_rate(speed: float, wheel_angle: float, wheelbase: float) -> float:
    """Kinematic bicycle model: yaw rate (rad/s, positive left) at `speed` m/s and front-wheel angle."""
    return speed * math.tan(wheel_angle) / wheelbase
