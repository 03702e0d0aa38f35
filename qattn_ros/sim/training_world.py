"""The worlds closed-loop training drives: seeded roads, conditions and looks, kept apart from the sweep's.

Training on the simulator must not train on the benchmark. The separation is explicit here and
checked by `held_out_violations` (the training entry point refuses a config that breaks it):

- roads: every training track is drawn from `TRAINING_SEEDS`; the sweep drives `HELD_OUT_SEEDS` only;
- levels: per sweep axis, the last `KEEP_OUT[axis]` levels lie outside every training range, so the
  sweep still measures extrapolation there. Bends go up to 1/22 m (today's frames: 1/45), covering the
  sweep's 1/35 and 1/25 levels but not its 1/18 and 1/12; speeds up to 30 m/s (40, 50, 60 kept out);
  steering delay up to 0.2 s; gusts up to 0.3 m/s; camera noise up to sd 14 with gains >= 0.72 and a
  cast <= 9 % (the camera levels 4 and 5 kept out); no appearance level at all is reachable — marking
  colours keep `colour_margin` (at least COLOUR_MARGIN_FLOOR) from each of the sweep's, lines stay narrower than
  0.45 m and at most a quarter of the stretches go unpainted;
- random streams: training worlds and the sweep draw from the simulator's stream with disjoint road seeds; the
  static splits each from their own (qattn_ros/core/streams.py), so no two share a look through a shared seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..core.config_mapping import from_mapping
from ..core.streams import stream
from .sweep import AXES, Level
from .track import HELD_OUT_SEEDS, TRAINING_SEEDS, Track, cut, generate_track
from .world import SimConfig

# per sweep axis: how many of its last levels must stay outside every training range
KEEP_OUT = {"speed": 3, "steering_delay": 3, "gust": 3, "camera": 2, "curvature": 2, "appearance": 6}
TRAINING_COLOURS = ((0.92, 0.92, 0.92), (0.85, 0.7, 0.15), (0.9, 0.9, 0.9))  # the renderer's own white / yellow
# the least RGB distance a config may keep from the sweep's marking colours: below it a drawn colour passes for one
COLOUR_MARGIN_FLOOR = 0.1


@dataclass(frozen=True)
class Randomization:
    """Ranges each training drive draws its world from (uniform; `*_share`: how often that part varies)."""

    speed: tuple[float, float] = (10.0, 30.0)  # m/s
    max_curvature: tuple[float, float] = (1 / 50, 1 / 22)  # 1/m, of the sharpest bend of a track
    steering_delay: tuple[float, float] = (0.05, 0.2)  # s
    lane_width: tuple[float, float] = (3.3, 4.0)  # m
    gust_share: float = 0.4
    gust: tuple[float, float] = (0.0, 0.3)  # m/s sd
    start_offset: tuple[float, float] = (0.0, 0.3)  # m
    photometric_share: float = 0.7
    noise: tuple[float, float] = (0.0, 14.0)  # pixel sd, 0-255 levels
    gain: tuple[float, float] = (0.72, 1.25)  # brightness and contrast, drawn each
    cast: float = 0.09  # +- per-channel colour gain
    appearance_share: float = 0.5
    colour_share: float = 0.3  # of the changed appearances: a marking colour of their own
    colour_margin: float = 0.3  # RGB distance kept from every marking colour the sweep shows
    line_width: tuple[float, float] = (0.1, 0.3)  # m
    missing_markings: tuple[float, float] = (0.0, 0.25)

    @classmethod
    def from_dict(cls, data: dict | None) -> Randomization:
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in (data or {}).items()}
        return from_mapping(cls, data, "randomization")


@dataclass(frozen=True)
class World:
    """One training drive: a road (a training seed, bent to `max_curvature`), a speed and the simulator's config."""

    track_seed: int
    max_curvature: float
    speed: float
    config: SimConfig

    def track(self, length_m: float) -> Track:
        return cut(generate_track(self.track_seed, length_m, self.max_curvature), length_m)

    def describe(self) -> dict:
        """What the checkpoint metadata keeps of it: the seed and every condition that differs from nominal."""
        nominal = SimConfig()
        changed = {f.name: _rounded(getattr(self.config, f.name)) for f in dataclasses.fields(SimConfig)
                   if getattr(self.config, f.name) != getattr(nominal, f.name)}  # fmt: skip
        return {"track_seed": self.track_seed, "max_curvature": round(self.max_curvature, 5),
                "speed": round(self.speed, 2), **changed}  # fmt: skip


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 4)
    return [round(v, 4) for v in value] if isinstance(value, tuple) else value


def _sweep_colours() -> list[tuple[float, float, float]]:
    return [tuple(dict(level.config)["marking_colour"]) for axis in AXES for level in axis.levels
            if "marking_colour" in dict(level.config)]  # fmt: skip


def _marking_colour(rng: np.random.Generator, margin: float) -> tuple[float, float, float]:
    """A random colour at least `margin` (RGB distance) from each marking colour the sweep tests with."""
    held_out = np.asarray(_sweep_colours())
    while True:
        colour = rng.uniform(0.0, 1.0, 3)
        if np.linalg.norm(held_out - colour, axis=1).min() >= margin:
            return tuple(float(c) for c in colour)


def sample_world(rng: np.random.Generator, spec: Randomization, frame_size: tuple[int, int] = (160, 320)) -> World:
    """One training world drawn from `spec`: a training road and its conditions (seeded by `rng`)."""
    seed = int(rng.integers(TRAINING_SEEDS.start, TRAINING_SEEDS.stop))
    changes: dict = {"max_speed": 60.0, "height": frame_size[0], "width": frame_size[1],
                     "lane_width": float(rng.uniform(*spec.lane_width)),
                     "steering_delay": float(rng.uniform(*spec.steering_delay))}  # fmt: skip
    if rng.random() < spec.gust_share:
        changes["gust"] = float(rng.uniform(*spec.gust))
        changes["start_offset"] = float(rng.uniform(*spec.start_offset))
    if rng.random() < spec.photometric_share:
        changes["noise"] = float(rng.uniform(*spec.noise))
        changes["brightness"], changes["contrast"] = (float(g) for g in rng.uniform(*spec.gain, 2))
        changes["colour_cast"] = tuple(float(c) for c in 1.0 + rng.uniform(-spec.cast, spec.cast, 3))
    if rng.random() < spec.appearance_share:
        changes["line_width"] = float(rng.uniform(*spec.line_width))
        changes["missing_markings"] = float(rng.uniform(*spec.missing_markings))
        if rng.random() < spec.colour_share:
            changes["marking_colour"] = _marking_colour(rng, spec.colour_margin)
    curvature = float(rng.uniform(*spec.max_curvature))
    return World(seed, curvature, float(rng.uniform(*spec.speed)), SimConfig(**changes))


# -- the separation from the sweep -------------------------------------------------------------------------
def _inside(spec: Randomization, key: str, value: object) -> bool:
    """Could a training world have `key` = `value` (a sweep level's setting)?"""
    ranges = {"steering_delay": spec.steering_delay, "gust": spec.gust, "start_offset": spec.start_offset,
              "noise": spec.noise, "brightness": spec.gain, "contrast": spec.gain, "line_width": spec.line_width,
              "missing_markings": spec.missing_markings}  # fmt: skip
    if key in ranges:
        low, high = ranges[key]
        return low - 1e-9 <= float(value) <= high + 1e-9
    if key == "colour_cast":
        return all(abs(c - 1.0) <= spec.cast + 1e-9 for c in value)
    if key == "marking_colour":
        colour = np.asarray(value, float)
        own = any(np.allclose(colour, c) for c in TRAINING_COLOURS)
        return own or (draws_colours(spec) and spec.colour_margin < COLOUR_MARGIN_FLOOR)
    return True  # a setting training never changes is its nominal value


def draws_colours(spec: Randomization) -> bool:
    return spec.appearance_share * spec.colour_share > 0


def level_inside(spec: Randomization, level: Level) -> bool:
    """Every setting of `level` is one a training world can have."""
    config = dict(level.config)
    return (spec.speed[0] <= level.speed <= spec.speed[1] and level.max_curvature <= spec.max_curvature[1]
            and all(_inside(spec, key, value) for key, value in config.items()))  # fmt: skip


def held_out_violations(spec: Randomization, track_seeds: list[int] = ()) -> list[str]:
    """What breaks the separation from the sweep: a sweep road among `track_seeds`, a kept-out level inside."""
    problems = [f"track seed {s} is one of the sweep's held-out roads" for s in track_seeds if s in HELD_OUT_SEEDS]
    problems += [f"track seed {s} is outside the training seeds" for s in track_seeds if s not in TRAINING_SEEDS]
    if draws_colours(spec) and spec.colour_margin < COLOUR_MARGIN_FLOOR:
        problems.append(f"colour_margin {spec.colour_margin:g} is under the floor {COLOUR_MARGIN_FLOOR:g}: a drawn "
                        "marking colour could pass for the sweep's")  # fmt: skip
    for axis in AXES:
        for level in axis.levels[len(axis.levels) - KEEP_OUT[axis.name] :]:
            if level_inside(spec, level):
                problems.append(f"sweep level {axis.name}={level.value:.4g} lies inside the training ranges")
    return problems


def training_worlds(count: int, spec: Randomization, frame_size: tuple[int, int], *seed: int) -> list[World]:
    """`count` worlds for one round, seeded by `seed` (e.g. the world seed and the round)."""
    rng = stream("training_worlds", *seed)
    return [sample_world(rng, spec, frame_size) for _ in range(count)]
