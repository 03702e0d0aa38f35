"""Closed-loop driving metrics: interventions, autonomy (NVIDIA's PilotNet definition), offsets, smoothness."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

INTERVENTION_PENALTY_S = 6.0  # Bojarski et al. 2016: each intervention costs 6 s of human driving


def autonomy(interventions: int, elapsed_s: float) -> float:
    """1 - interventions x 6 s / elapsed, at least 0 (0 for no time driven)."""
    return max(0.0, 1.0 - interventions * INTERVENTION_PENALTY_S / elapsed_s) if elapsed_s > 0 else 0.0


@dataclass
class DriveLog:
    """One row per simulator step, plus where the car was put back on the centre line."""

    dt: float
    time: list[float] = field(default_factory=list)
    distance: list[float] = field(default_factory=list)  # m along the road
    offset: list[float] = field(default_factory=list)  # m, positive left of the lane centre
    heading: list[float] = field(default_factory=list)  # rad, vehicle yaw - road yaw, positive left
    steering: list[float] = field(default_factory=list)  # rad, front-wheel angle applied
    x: list[float] = field(default_factory=list)  # odom pose, for plots
    y: list[float] = field(default_factory=list)
    interventions: list[tuple[float, float]] = field(default_factory=list)  # (time, distance)

    def add(self, time: float, distance: float, offset: float, heading: float, steering: float, x: float, y: float
            ) -> None:  # fmt: skip
        for name, value in zip(("time", "distance", "offset", "heading", "steering", "x", "y"),
                               (time, distance, offset, heading, steering, x, y), strict=True):  # fmt: skip
            getattr(self, name).append(float(value))

    def summary(self) -> dict:
        elapsed = self.time[-1] if self.time else 0.0
        offset, heading = np.abs(self.offset), np.abs(self.heading)
        steering = np.asarray(self.steering)
        # steering jerk: RMS second difference of the applied angle, rad/s^2 (how restless the wheel is)
        jerk = float(np.sqrt(np.mean((np.diff(steering, 2) / self.dt**2) ** 2))) if len(steering) > 2 else 0.0
        return {
            "autonomy": autonomy(len(self.interventions), elapsed),
            "interventions": len(self.interventions),
            "km": (self.distance[-1] if self.distance else 0.0) / 1000.0,
            "elapsed_s": elapsed,
            "mean_abs_offset_m": float(offset.mean()) if offset.size else 0.0,
            "max_abs_offset_m": float(offset.max()) if offset.size else 0.0,
            "mean_abs_heading_rad": float(heading.mean()) if heading.size else 0.0,
            "steering_jerk_rms": jerk,
            "steps": len(self.time),
        }
