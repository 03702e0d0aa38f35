"""Difficulty sweeps: each axis goes from the nominal world to beyond what any driver survives.

A level is one condition (a speed, a delay, gusts, a camera, a road, an appearance); every
driver drives the same held-out tracks at every level. Per driver and level the figures are
pooled over the tracks, each with its spread (sd over tracks); an axis's breaking point for a
driver is the first level whose autonomy is below `BREAKING_AUTONOMY`. The first level of
every axis is the nominal world, so it is driven once and shared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..core.atomic import read_json, write_json
from ..model.checkpoint import read_info
from .drive import drive
from .metrics import autonomy
from .track import HELD_OUT_SEEDS, MAX_CURVATURE, cut, generate_track
from .world import RoadSim, SimConfig

BREAKING_AUTONOMY = 0.99
NOMINAL_SPEED = 15.0  # m/s
PURSUIT = "pursuit"
FIGURES = ("autonomy", "interventions_per_km", "mean_abs_offset_m", "p95_abs_offset_m", "steering_jerk_rms")


@dataclass(frozen=True)
class Level:
    """One condition: the value shown on the axis, the speed, how sharp the roads bend, SimConfig changes."""

    value: float
    speed: float = NOMINAL_SPEED
    max_curvature: float = MAX_CURVATURE
    config: tuple[tuple[str, object], ...] = ()

    def sim_config(self) -> SimConfig:
        return SimConfig(max_speed=60.0, **dict(self.config))

    @property
    def key(self) -> tuple:
        """What is driven: levels of different axes with the same key are the same drive."""
        return self.speed, self.max_curvature, tuple(sorted(self.config))


NOMINAL = Level(0.0)


@dataclass(frozen=True)
class Axis:
    name: str
    label: str  # the plot's x label
    what: str  # one line for reports
    levels: tuple[Level, ...] = field(default_factory=tuple)


# (pixel noise sd, brightness and contrast gain, warm cast) per camera severity
_CAMERA = ((0, 1.0, 0.0), (4, 0.92, 0.03), (8, 0.85, 0.05), (12, 0.78, 0.08), (16, 0.7, 0.1), (28, 0.55, 0.2))


def _camera(severity: int) -> Level:
    """Pixel noise, darker, flatter, a warm cast: all growing together (0: the nominal camera)."""
    if severity == 0:
        return NOMINAL
    noise, gain, cast = _CAMERA[severity]
    contrast = gain
    return Level(severity, config=(("noise", float(noise)), ("brightness", gain), ("contrast", contrast),
                                   ("colour_cast", (1 + cast, 1.0, 1 - cast))))  # fmt: skip


_APPEARANCE = (
    (),
    (("marking_colour", (0.2, 0.45, 0.95)),),  # blue lines
    (("marking_colour", (0.9, 0.15, 0.15)), ("line_width", 0.45)),  # wide red lines
    (("missing_markings", 0.5),),  # half the 40 m stretches unpainted
    (("missing_markings", 1.0),),  # no lines at all: only the asphalt's edge
    (("missing_markings", 0.5), ("marking_colour", (0.3, 0.3, 0.3)), ("line_width", 0.6)),  # wide dark lines, gaps
    (("marking_colour", (0.25, 0.5, 0.2)), ("line_width", 1.0)),  # 1 m wide lines the green of grass
)

AXES = (
    Axis("speed", "speed (m/s)", "cruise speed; camera 20 Hz, 0.1 s steering delay",
         tuple(Level(v, speed=v) for v in (15.0, 30.0, 40.0, 50.0, 60.0))),
    Axis("steering_delay", "steering actuation delay (s)", "time from a command to the wheels",
         tuple(Level(d, config=(("steering_delay", d),) if d != 0.1 else ()) for d in (0.1, 0.2, 0.3, 0.4, 0.5))),
    Axis("gust", "lateral gust sd (m/s); start offset grows with it", "wind drift (1 s correlated) and a start off "
         "the centre line (0, 0.3, 0.5, 0.7, 0.85 m)",
         tuple(Level(g, config=(("gust", g), ("start_offset", o)) if g else ())
               for g, o in ((0.0, 0.0), (0.25, 0.3), (0.5, 0.5), (0.75, 0.7), (1.0, 0.85)))),
    Axis("camera", "camera degradation (0 = none)", "pixel noise sd 0/4/8/12/16/28 levels, brightness and "
         "contrast x1/0.92/0.85/0.78/0.7/0.55, a warm cast (R up, B down) 0/3/5/8/10/20 %",
         tuple(_camera(s) for s in range(len(_CAMERA)))),
    Axis("curvature", "max road curvature (1/m); training <= 1/45", "every bend of the same roads sharper",
         tuple(Level(k, max_curvature=k) for k in (1 / 50, 1 / 35, 1 / 25, 1 / 18, 1 / 12))),
    Axis("appearance", "unseen appearance (0 = as trained)", "blue lines; wide red lines; half the stretches "
         "unpainted; no lines at all; wide dark lines with gaps; 1 m wide grass-green lines",
         tuple(Level(i, config=c) for i, c in enumerate(_APPEARANCE))),
)  # fmt: skip
AXIS_NAMES = tuple(axis.name for axis in AXES)


def tracks_for(level: Level, count: int, length_m: float) -> list:
    """The same `count` held-out roads, `length_m` each, at every level (bent to the level's curvature)."""
    return [cut(generate_track(seed, length_m, level.max_curvature), length_m) for seed in HELD_OUT_SEEDS[:count]]


# -- driving one level -------------------------------------------------------------------------------------
_PREDICTORS: dict[str, object] = {}


def _steer_for(driver: str, checkpoint: str | None) -> Callable:
    """A steering function of (sim, frame) for pursuit or a checkpoint (loaded once per process)."""
    if checkpoint is None:
        return lambda sim, frame: sim.pursuit_steering()
    if checkpoint not in _PREDICTORS:
        import torch

        from ..inference.predictor import SteeringPredictor

        torch.set_num_threads(1)
        _PREDICTORS[checkpoint] = SteeringPredictor(checkpoint, "cpu")
    predictor = _PREDICTORS[checkpoint]
    predictor.reset()
    return lambda sim, frame: predictor.predict(frame.image).wheel_angle


def drive_level(level: Level, driver: str, checkpoint: str | None, tracks: int, length_m: float) -> dict:
    """One driver on the level's tracks: per-track figures and the pooled |offset| for percentiles."""
    per_track, offsets = [], []
    for track in tracks_for(level, tracks, length_m):
        sim = RoadSim(track, level.sim_config())
        steer = _steer_for(driver, checkpoint)
        drive(sim, lambda frame, sim=sim, steer=steer: steer(sim, frame), level.speed, progress=False,
              render=checkpoint is not None)  # fmt: skip
        summary = sim.log.summary()
        offset = np.abs(np.asarray(sim.log.offset))
        summary["p95_abs_offset_m"] = float(np.percentile(offset, 95)) if offset.size else 0.0
        summary["interventions_per_km"] = summary["interventions"] / max(summary["km"], 1e-9)
        per_track.append(summary)
        offsets.append(offset)
    return figures(per_track, np.concatenate(offsets))


def figures(per_track: list[dict], offsets: np.ndarray) -> dict:
    """Pooled figures over the tracks, each with `<figure>_sd` (sd over tracks), and autonomy's worst track."""
    interventions = sum(t["interventions"] for t in per_track)
    km, elapsed = sum(t["km"] for t in per_track), sum(t["elapsed_s"] for t in per_track)
    steps = np.array([t["steps"] for t in per_track], float)
    pooled = {
        "autonomy": autonomy(interventions, elapsed),
        "interventions_per_km": interventions / km if km else 0.0,
        "mean_abs_offset_m": float(np.average([t["mean_abs_offset_m"] for t in per_track], weights=steps)),
        "p95_abs_offset_m": float(np.percentile(offsets, 95)) if offsets.size else 0.0,
        "steering_jerk_rms": float(np.average([t["steering_jerk_rms"] for t in per_track], weights=steps)),
    }
    result = {"interventions": interventions, "km": km, "tracks": len(per_track)}
    for name in FIGURES:
        result[name] = pooled[name]
        result[f"{name}_sd"] = float(np.std([t[name] for t in per_track], ddof=1)) if len(per_track) > 1 else 0.0
    result["autonomy_min"] = min(t["autonomy"] for t in per_track)
    return result


def _job(args: tuple) -> tuple[tuple, str, dict, bool]:
    level, driver, checkpoint, tracks, length_m, cache = args
    stored = _stored(cache, level, checkpoint, tracks, length_m)
    kept = read_json(stored) if stored is not None else None  # a file a crash tore is driven again
    if isinstance(kept, dict):
        return level.key, driver, kept, True
    result = drive_level(level, driver, checkpoint, tracks, length_m)
    if stored is not None:
        write_json(stored, result, indent=None)
    return level.key, driver, result, False


def _stored(cache: Path | None, level: Level, checkpoint: str | None, tracks: int, length_m: float) -> Path | None:
    """Where a finished drive is kept: named by the level, the checkpoint's SHA-256 and the roads."""
    if cache is None:
        return None
    identity = read_info(checkpoint).sha256 if checkpoint else PURSUIT
    text = repr((level.key, identity, tracks, length_m))
    return cache / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.json"


@dataclass
class SweepResult:
    sweep: dict  # axis -> level value (str) -> driver -> figures
    breaking_point: dict  # axis -> driver -> first level value with autonomy < 99 %, or None (never broke)
    tracks_per_level: int
    track_length_m: float
    axes: dict  # axis -> {"label", "what", "levels"}
    cached: int = 0  # drives taken from the cache, not driven


def run_sweep(checkpoints: dict[str, str], axes: Iterable[str] = AXIS_NAMES, tracks: int = 5,
              length_m: float = 250.0, jobs: int = 1, cache: Path | None = None) -> SweepResult:  # fmt: skip
    """Every driver (pure pursuit + `checkpoints`, name -> path) at every level of `axes`.

    `cache`: a folder keeping each finished drive, so that an interrupted sweep continues where it stopped.
    """
    chosen = [axis for axis in AXES if axis.name in set(axes)]
    drivers = {PURSUIT: None, **checkpoints}
    unique = {level.key: level for axis in chosen for level in axis.levels}
    work = [
        (level, driver, path, tracks, length_m, cache) for level in unique.values() for driver, path in drivers.items()
    ]
    work.sort(key=lambda item: item[2] is None)  # camera drivers first: they take the time
    done: dict[tuple, dict] = {}
    cached = 0
    with tqdm(total=len(work), desc="sweep", unit="drive") as bar:
        pool = ProcessPoolExecutor(jobs) if jobs > 1 else None
        for key, driver, result, kept in pool.map(_job, work) if pool else map(_job, work):
            done[key, driver] = result
            cached += kept
            bar.update()
        if pool:
            pool.shutdown()
    sweep, breaking, described = {}, {}, {}
    for axis in chosen:
        sweep[axis.name] = {_label(lv.value): {d: done[lv.key, d] for d in drivers} for lv in axis.levels}
        breaking[axis.name] = {d: breaking_point(axis, {lv.value: done[lv.key, d] for lv in axis.levels})
                               for d in drivers}  # fmt: skip
        described[axis.name] = {"label": axis.label, "what": axis.what, "levels": [lv.value for lv in axis.levels]}
    return SweepResult(sweep, breaking, tracks, length_m, described, cached)


def breaking_point(axis: Axis, by_value: dict[float, dict]) -> float | None:
    """The first level (in the axis's order) whose autonomy is below 99 %; None when none is."""
    for level in axis.levels:
        if by_value[level.value]["autonomy"] < BREAKING_AUTONOMY:
            return level.value
    return None


def _label(value: float) -> str:
    """A level's JSON key: short and exact enough to read (1/25 -> '0.04')."""
    return f"{value:.4g}"
