"""The closed-loop road simulator: a kinematic bicycle on a track, seen through the synthetic camera.

The vehicle state lives in the lane's (Frenet) frame: arc length s, lateral offset n (m,
positive left of the lane centre) and heading error theta (vehicle yaw - road yaw, positive
left). With road curvature k(s), speed v and front-wheel angle delta:

    ds/dt = v cos(theta) / (1 - k n),   dn/dt = v sin(theta),   dtheta/dt = v tan(delta) / L - k ds/dt

integrated with 4 Euler substeps per camera frame. Each frame renders the synthetic road from
that state with the training renderer: the road ahead is the track's own centre line seen from
the car (`road_ahead="profile"`: an S-bend's far half bends back; `"mean"` draws one mean
curvature of the next look-ahead metres as a parabola, the training frames' road model), and trees, shadows and dashes
stay where they are in the world while oncoming cars drive towards the car. The appearance
(light, colours, marking style) changes every `zone_length` metres. Commands are clamped to
the steering and speed limits (counted) and act after `steering_delay` s. When |n| exceeds
`intervention_offset` the car is put back on the centre line and the intervention counted.

Harder conditions, all off by default: a lateral gust (a drift velocity w added to dn/dt, an
Ornstein-Uhlenbeck process with sd `gust` m/s and 1 s correlation), a start `start_offset` m off
the centre line, camera noise and a photometric shift, marking colours, widths and stretches
without markings that training never showed. Every random draw is seeded by the track seed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..core.errors import ConfigError
from ..core.streams import stream
from ..core.units import DEFAULT_VEHICLE
from ..data.synthetic import LINE_WIDTH_M, LOOK_AHEAD_M, RoadGenerator, RoadScene, SyntheticFrame
from .metrics import DriveLog
from .track import Track

SUBSTEPS = 4
GUST_CORRELATION_S = 1.0
ONCOMING_SPEED = 12.0  # m/s of the oncoming cars
ONCOMING_SPACING = 100.0  # m between oncoming cars (half of them are there)
SEEN = (3.0, 90.0)  # m ahead in which world objects are drawn
ROAD_AHEAD_M = 400.0  # m of road drawn from the track; beyond, haze has hidden it


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
    road_ahead: str = "profile"  # "profile": the track's curvature ahead; "mean": one mean curvature (training's)
    gust: float = 0.0  # m/s, sd of the lateral drift the wind adds
    start_offset: float = 0.0  # m off the centre line at the start (left on even track seeds, right on odd)
    noise: float = 0.0  # sd of Gaussian pixel noise, 0-255 levels
    brightness: float = 1.0  # gain on every pixel
    contrast: float = 1.0  # gain around mid-grey
    colour_cast: tuple[float, float, float] = (1.0, 1.0, 1.0)  # gain per RGB channel
    marking_colour: tuple[float, float, float] | None = None  # RGB in [0, 1] for every marking; None: training's
    line_width: float = LINE_WIDTH_M  # m, every marking
    missing_markings: float = 0.0  # share of zones without painted lines

    def __post_init__(self) -> None:
        checks = {
            "rate": 1 <= self.rate <= 200, "height": 16 <= self.height <= 2160, "width": 16 <= self.width <= 3840,
            "lane_width": 2.5 <= self.lane_width <= 6.0, "zone_length": self.zone_length > 0,
            "intervention_offset": 0.1 <= self.intervention_offset <= 3.0, "wheelbase": 0.1 <= self.wheelbase <= 10,
            "max_steering": 0.01 <= self.max_steering <= 1.5, "max_speed": 0 < self.max_speed <= 60,
            "steering_delay": 0 <= self.steering_delay <= 2.0, "road_ahead": self.road_ahead in ("profile", "mean"),
            "gust": 0 <= self.gust <= 10, "start_offset": 0 <= self.start_offset < self.intervention_offset,
            "noise": 0 <= self.noise <= 255, "brightness": 0 < self.brightness <= 4,
            "contrast": 0 <= self.contrast <= 4,
            "colour_cast": len(self.colour_cast) == 3 and all(0 <= c <= 4 for c in self.colour_cast),
            "marking_colour": self.marking_colour is None
            or (len(self.marking_colour) == 3 and all(0 <= c <= 1 for c in self.marking_colour)),
            "line_width": 0.01 <= self.line_width <= 1.0, "missing_markings": 0 <= self.missing_markings <= 1,
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


@dataclass
class ProfileScene(RoadScene):
    """A scene whose lane centre is the track's own centre line ahead, as the camera sees it (not a parabola)."""

    forward: np.ndarray | None = None  # m ahead of the camera, increasing
    right: np.ndarray | None = None  # m right of the camera, of the lane centre at that depth

    def lane_center(self, z: np.ndarray | float) -> np.ndarray | float:
        centre = np.interp(z, self.forward, self.right)
        return float(centre) if np.ndim(centre) == 0 else centre


class SimView(RoadGenerator):
    """The training renderer seen from a car that moves through a world that stays put.

    Training frames are single scenes: there, shadows, trees, dashes and the oncoming car are
    placed relative to the camera. Here they are placed on the track (arc length), so they come
    closer as the car drives; oncoming cars drive towards it. Appearance options from SimConfig.
    """

    def __init__(self, config: SimConfig, seed: int) -> None:
        super().__init__(config.height, config.width, seed=seed, purpose="sim_world")
        self.config = config
        self.line_width, self.marking_colour = config.line_width, config.marking_colour
        self.s = self.time = 0.0

    def view(self, scene: RoadScene, s: float, time: float) -> SyntheticFrame:
        """`scene` seen from arc length `s` at `time`, with the appearance of the zone the car is in."""
        self.s, self.time = s, time
        zone = int(s // self.config.zone_length)
        look = self.rng(zone, 2).random(24).tolist()
        look[7] = ((look[7] * 12.0 + s) % 12.0) / 12.0  # the dashes' phase: they stay on the road
        self.markings = self.rng(zone, 9).random() >= self.config.missing_markings
        image, mask = self._render(scene, look, self.rng(zone, 1))
        return SyntheticFrame(image=image, mask=mask, scene=scene)

    def _placed(self, salt: int) -> list[tuple[float, np.random.Generator]]:
        """(metres ahead, its generator) of each world slot of `zone_length` m whose start is in sight."""
        length = self.config.zone_length
        first, last = int((self.s + SEEN[0]) // length) - 1, int((self.s + SEEN[1]) // length)
        slots = []
        for slot in range(max(first, 0), last + 1):
            rng = self.rng(slot, salt)
            slots.append((slot * length - self.s, rng))
        return slots

    def _shadows(self, look: list[float], rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
        shadows = []
        for start, slot in self._placed(3):
            for _ in range(int(slot.integers(0, 3))):
                sx, z = slot.uniform(-8, 6), start + slot.uniform(0, self.config.zone_length)
                shadow = (sx, z, slot.uniform(1.0, 3.5), slot.uniform(1.0, 5.0))
                if SEEN[0] <= z <= 45.0:
                    shadows.append(shadow)
        return sorted(shadows, key=lambda shadow: shadow[1])[:4]

    def _objects(self, scene: RoadScene, look: list[float], rng: np.random.Generator) -> list[tuple]:
        objects, lane = [], scene.lane_width
        for start, slot in self._placed(4):
            for _ in range(int(slot.integers(0, 5))):
                side, z, away = (
                    slot.random() < 0.5,
                    start + slot.uniform(0, self.config.zone_length),
                    slot.uniform(2.5, 12),
                )
                colour = (int(slot.uniform(20, 70)), int(slot.uniform(70, 130)), int(slot.uniform(20, 60)))
                lateral = 0.5 * lane + away if side else -1.5 * lane - away
                tree = ("tree", z, lateral, slot.uniform(4, 9), colour)
                if SEEN[0] <= z <= SEEN[1]:
                    objects.append(tree)
        travelled = self.s + ONCOMING_SPEED * self.time  # cars at S_j - v t: ahead by S_j - v t - s
        for car in range(
            int((travelled + SEEN[0]) // ONCOMING_SPACING), int((travelled + SEEN[1]) // ONCOMING_SPACING) + 1
        ):
            slot = self.rng(car, 5)
            z = car * ONCOMING_SPACING - travelled
            if slot.random() < 0.5 and SEEN[0] <= z <= SEEN[1]:
                objects.append(("car", z, -lane, 1.8, tuple(int(c) for c in slot.uniform(30, 230, 3))))
        return objects

    def camera(self, image: np.ndarray, step: int) -> np.ndarray:
        """The photometric shift and pixel noise of the config (none: the image as rendered)."""
        c = self.config
        if c.noise == 0 and c.brightness == 1 and c.contrast == 1 and tuple(c.colour_cast) == (1.0, 1.0, 1.0):
            return image
        shifted = ((image.astype(np.float32) - 128.0) * c.contrast + 128.0) * c.brightness * np.float32(c.colour_cast)
        if c.noise:
            shifted += self.rng(step, 6).standard_normal(image.shape, np.float32) * c.noise
        return np.clip(shifted, 0, 255).astype(np.uint8)


class RoadSim:
    def __init__(self, track: Track, config: SimConfig = SimConfig(), appearance_seed: int | None = None) -> None:
        self.track, self.config = track, config
        self.seed = track.seed if appearance_seed is None else appearance_seed
        self.renderer = SimView(config, self.seed or 0)
        self.dt = 1.0 / config.rate
        self.log = DriveLog(self.dt)
        self.counts = {"clamped": 0, "invalid": 0}
        self.gust_rng = stream("sim_gust", self.seed or 0)
        self.reset()

    def reset(self) -> None:
        self.s = self.theta = self.delta = self.time = self.drift = 0.0
        self.n = self.config.start_offset * (1.0 if (self.track.seed or 0) % 2 == 0 else -1.0)
        self.speed = 0.0
        self.steps = 0
        self.queue: deque[tuple[float, float]] = deque()  # (time due, wheel angle) of delayed commands

    @property
    def done(self) -> bool:
        return self.s >= self.track.length

    def scene(self) -> RoadScene:
        """What the camera sees, in the renderer's terms (offset right-positive, heading of the road)."""
        if self.config.road_ahead == "mean":
            curvature = self.track.mean_curvature(self.s, LOOK_AHEAD_M)
            return RoadScene(curvature=curvature, offset=-self.n, heading=self.theta,
                             lane_width=self.config.lane_width, speed=self.speed)  # fmt: skip
        forward, left = self.track.ahead(self.s, ROAD_AHEAD_M)
        cos, sin = math.cos(self.theta), math.sin(self.theta)  # into the car's frame: n left, theta left of the road
        depth, right = forward * cos + (left - self.n) * sin, forward * sin - (left - self.n) * cos
        turning_back = np.flatnonzero(np.diff(depth) <= 0)  # past 90 degrees the road leaves the picture
        end = turning_back[0] + 1 if turning_back.size else depth.size
        return ProfileScene(curvature=float(self.track.curvature_at(self.s)), offset=-self.n, heading=self.theta,
                            lane_width=self.config.lane_width, speed=self.speed, forward=depth[:end],
                            right=right[:end])  # fmt: skip

    def frame(self) -> SyntheticFrame:
        frame = self.renderer.view(self.scene(), self.s, self.time)
        frame.image = self.renderer.camera(frame.image, self.steps)
        return frame

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
        if self.config.gust:  # Ornstein-Uhlenbeck lateral drift, one draw per camera period
            keep = math.exp(-self.dt / GUST_CORRELATION_S)
            self.drift = keep * self.drift + math.sqrt(1 - keep**2) * self.config.gust * self.gust_rng.standard_normal()
        for _ in range(SUBSTEPS):
            while self.queue and self.queue[0][0] <= self.time + 1e-9:
                self.delta = self.queue.popleft()[1]
            k = float(self.track.curvature_at(self.s))
            ds = self.speed * math.cos(self.theta) / max(1.0 - k * self.n, 0.1)
            self.s += ds * h
            self.n += (self.speed * math.sin(self.theta) + self.drift) * h
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
