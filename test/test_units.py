"""Steering units against values worked out by hand, not against each other."""

import math

import pytest

from qattn_ros.core.errors import ConfigError
from qattn_ros.core.units import DEFAULT_VEHICLE, VehicleGeometry, from_wheel_angle, to_wheel_angle, yaw_rate


@pytest.mark.parametrize(
    "value, unit, positive_is_left, vehicle, wheel_angle_left",
    [
        (1.0, "sim_normalized", False, DEFAULT_VEHICLE, -0.4363323),  # full right in the simulator: 25 deg right
        (-0.2, "sim_normalized", False, DEFAULT_VEHICLE, 0.0872665),  # 5 deg left
        (0.3, "wheel_rad", True, DEFAULT_VEHICLE, 0.3),
        (0.3, "wheel_rad", False, DEFAULT_VEHICLE, -0.3),
        (1.48, "steering_wheel_rad", True, DEFAULT_VEHICLE, 0.1),  # Udacity MKZ: ratio 14.8
        (1.48, "steering_wheel_rad", True, VehicleGeometry(steering_ratio=16.0), 0.0925),
        (0.1, "curvature", True, DEFAULT_VEHICLE, 0.2776392),  # atan(2.85 m x 0.1 /m)
        (0.1, "curvature", True, VehicleGeometry(wheelbase=1.0), 0.0996687),  # atan(0.1)
    ],
)
def test_known_conversions_to_the_front_wheel_angle(value, unit, positive_is_left, vehicle, wheel_angle_left) -> None:
    assert to_wheel_angle(value, unit, positive_is_left, vehicle) == pytest.approx(wheel_angle_left, abs=1e-6)
    assert from_wheel_angle(wheel_angle_left, unit, positive_is_left, vehicle) == pytest.approx(value, abs=1e-6)


def test_the_default_vehicle_is_udacitys_lincoln_mkz() -> None:
    assert (DEFAULT_VEHICLE.steering_ratio, DEFAULT_VEHICLE.wheelbase) == (14.8, 2.85)


def test_yaw_rate_of_the_bicycle_model() -> None:
    # 10 m/s, 0.1 rad front wheel, 2.5 m wheelbase: 10 tan(0.1) / 2.5
    assert yaw_rate(10.0, 0.1, 2.5) == pytest.approx(0.4013387, abs=1e-6)
    assert yaw_rate(10.0, -0.1, 2.5) == pytest.approx(-0.4013387, abs=1e-6)
    assert math.isclose(yaw_rate(0.0, 0.3, 2.85), 0.0)


@pytest.mark.parametrize("bad", [{"steering_ratio": 0.0}, {"wheelbase": -1.0}, {"wheelbase": float("nan")}])
def test_bad_geometry_is_refused_naming_the_key(bad) -> None:
    with pytest.raises(ConfigError, match="vehicle." + next(iter(bad))):
        VehicleGeometry(**bad)


def test_an_unknown_unit_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown unit 'degrees'"):
        to_wheel_angle(1.0, "degrees", True)
