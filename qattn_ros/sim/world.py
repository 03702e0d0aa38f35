"""The closed-loop road simulator: a kinematic bicycle on a track, seen through the synthetic camera.

The vehicle state lives in the lane's (Frenet) frame: arc length s, lateral offset n (m,
positive left of the lane centre) and heading error theta (vehicle yaw - road yaw, positive
left). With road curvature k(s), speed v and front-wheel angle delta:

    ds/dt = v cos(theta) / (1 - k n),   dn/dt = v sin(theta),   dtheta/dt = v tan(delta) / L - k ds/dt

integrated with 4 Euler substeps per camera frame. Each frame renders the synthetic road from
that state (offset, heading, the mean curvature of the next look-ahead metres), with an
appearance (markings, light, shadows, trees, an oncoming car) that changes every `zone_length`
metres. Commands are clamped to the steering and speed limits (counted) and act after
`steering_delay` s. When |n| exceeds `intervention_offset` the car is put back on the centre
line and the intervention counted.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from ..data.synthetic import LOOK_AHEAD_M, RoadGenerator, RoadScene, SyntheticFrame
from ..errors import ConfigError
from ..units import DEFAULT_VEHICLE
from .metrics import DriveLog
from .track import Track

SUBSTEPS = 4


@dataclass(frozen=True)
class SimConfig:
    rate: float = 20.0  # Hz, camera frames = simulation steps
    height: int = 160
    width: int = 320
    lane_width: float = 3.6  # m
    zone_length: float = 40.0  # m of road with one appearance
    intervention_offset: float = 1.0  # m from the lane centre
    wheelbase: float = DEFAULT_VEHICLE.wheelbase
    max_steering: float = 0.6  # rad, front wheel
    max_speed: float = 30.0  # m/s
    steering_delay: float = 0.1  # s between a command and the wheels

    def __post_init__(self) -> None:
        checks = {
            "rate": 1 <= self.rate <= 200, "height": 16 <= self.height <= 2160, "width": 16 <= self.width <= 3840,
            "lane_width": 2.5 <= self.lane_width <= 6.0, "zone_length": self.zone_length > 0,
            "intervention_offset": 0.1 <= self.intervention_offset <= 3.0, "wheelbase": 0.1 <= self.wheelbase <= 10,
            "max_steering": 0.01 <= self.max_steering <= 1.5, "max_speed": 0 < self.max_speed <= 60,
            "steering_delay": 0 <= self.steering_delay <= 2.0,
        }  # fmt: skip
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"simulator: out of range: {', '.join(f'{n}={getattr(self, n)}' for n in bad)}")


@dataclass
class Command:
    """What the simulator did with a command: the values applied and why they differ."""

    speed: float
    steering: float
    clamped: bool = False
    invalid: bool = False  # NaN or infinite: the car brakes and keeps its wheel angle


class RoadSim:
    def __init__(self, track: Track, config: SimConfig = SimConfig(), appearance_seed: int | None = None) -> None:
        self.track, self.config = track, config
        self.renderer = RoadGenerator(config.height, config.width, seed=track.seed if appearance_seed is None
                                      else appearance_seed)  # fmt: skip
        self.dt = 1.0 / config.rate
        self.log = DriveLog(self.dt)
        self.counts = {"clamped": 0, "invalid": 0}
        self.reset()

    def reset(self) -> None:
        self.s = self.n = self.theta = self.delta = self.time = 0.0
        self.speed = 0.0
        self.steps = 0
        self.queue: deque[tuple[float, float]] = deque()  # (time due, wheel angle) of delayed commands

    @property
    def done(self) -> bool:
        return self.s >= self.track.length

    def scene(self) -> RoadScene:
        """What the camera sees, in the renderer's terms (offset right-positive, heading of the road)."""
        curvature = self.track.mean_curvature(self.s, LOOK_AHEAD_M)
        return RoadScene(curvature=curvature, offset=-self.n, heading=self.theta, lane_width=self.config.lane_width,
                         speed=self.speed)  # fmt: skip

    def frame(self) -> SyntheticFrame:
        return self.renderer.render(self.scene(), int(self.s // self.config.zone_length))

    def check(self, speed: float, steering: float) -> Command:
        """Clamp a command to the vehicle's limits; NaN or infinite values brake (counted)."""
        if not (math.isfinite(speed) and math.isfinite(steering)):
            self.counts["invalid"] += 1
            return Command(0.0, self.delta, invalid=True)
        limited = Command(min(max(speed, 0.0), self.config.max_speed),
                          min(max(steering, -self.config.max_steering), self.config.max_steering))  # fmt: skip
        limited.clamped = (limited.speed, limited.steering) != (speed, steering)
        self.counts["clamped"] += int(limited.clamped)
        return limited

    def step(self, speed: float, steering: float) -> Command:
        """Apply a command (m/s, front-wheel rad positive left) and advance one camera period."""
        command = self.check(speed, steering)
        self.speed = command.speed
        self.queue.append((self.time + self.config.steering_delay, command.steering))
        h = self.dt / SUBSTEPS
        for _ in range(SUBSTEPS):
            while self.queue and self.queue[0][0] <= self.time + 1e-9:
                self.delta = self.queue.popleft()[1]
            k = float(self.track.curvature_at(self.s))
            ds = self.speed * math.cos(self.theta) / max(1.0 - k * self.n, 0.1)
            self.s += ds * h
            self.n += self.speed * math.sin(self.theta) * h
            self.theta += (self.speed * math.tan(self.delta) / self.config.wheelbase - k * ds) * h
            self.time += h
        self.steps += 1
        x, y, _ = self.track.pose(self.s, self.n, self.theta)
        self.log.add(self.time, self.s, self.n, self.theta, self.delta, x, y)
        if abs(self.n) > self.config.intervention_offset:
            self.log.interventions.append((self.time, self.s))
            self.n = self.theta = self.delta = 0.0  # back on the centre line, wheels straight
            self.queue.clear()
        return command

    def pursuit_steering(self) -> float:
        """The ground-truth controller: pure pursuit on the road the camera shows (the training label)."""
        return self.scene().steering()
