"""Drive a track headless with a steering function: the closed loop without ROS."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from ..data.synthetic import SyntheticFrame
from ..explain.overlay import overlay, to_camera
from ..inference.predictor import Prediction, SteeringPredictor
from .metrics import autonomy
from .report import write_gif
from .track import Track
from .world import RoadSim, SimConfig

GIF_STEPS = 160  # the first 8 s at 20 Hz, every second frame


def drive(
    sim: RoadSim,
    steer: Callable[[SyntheticFrame | None], float],
    speed: float,
    progress: bool = True,
    on_frame: Callable[[SyntheticFrame, float], None] | None = None,
    render: bool = True,
) -> RoadSim:
    """Render, steer (front-wheel rad, positive left), step, until the end of the track.

    `render=False`: a driver that does not look (pure pursuit on the ground truth) gets no frame.
    """
    bar = tqdm(total=round(sim.track.length), desc=f"drive seed {sim.track.seed}", unit="m", disable=not progress)
    while not sim.done:
        frame = sim.frame() if render else None
        angle = steer(frame)
        if on_frame is not None and frame is not None:
            on_frame(frame, angle)
        sim.step(speed, angle)
        bar.update(round(sim.s) - bar.n)
        bar.set_postfix(interventions=len(sim.log.interventions), offset=f"{np.abs(sim.n):.2f}", refresh=False)
    bar.close()
    return sim


def gif_frame(frame: SyntheticFrame, prediction: Prediction, predictor: SteeringPredictor) -> np.ndarray:
    """Camera | attention overlay, side by side."""
    if prediction.attention is None:
        return np.concatenate([frame.image, frame.image], axis=1)
    heat = to_camera(prediction.attention, *frame.image.shape[:2], predictor.preprocessing)
    return np.concatenate([frame.image, overlay(frame.image, heat, alpha=0.6)], axis=1)


def drive_predictor(
    predictor: SteeringPredictor, tracks: list[Track], config: SimConfig, speed: float, gif: str | None = None
) -> list[RoadSim]:
    """A checkpoint drives each track (its state reset per track); the first seconds of the first as a GIF."""
    frames: list[np.ndarray] = []
    sims = []
    for number, track in enumerate(tracks):
        predictor.reset()
        sim = RoadSim(track, config)
        last: dict[str, Prediction] = {}

        def steer(frame: SyntheticFrame, last=last) -> float:
            last["prediction"] = predictor.predict(frame.image)
            return last["prediction"].wheel_angle

        def keep(frame: SyntheticFrame, angle: float, sim=sim, last=last, first=number == 0) -> None:
            if gif and first and sim.steps < GIF_STEPS and sim.steps % 2 == 0:
                frames.append(gif_frame(frame, last["prediction"], predictor))

        sims.append(drive(sim, steer, speed, on_frame=keep))
    if gif:
        write_gif(frames, gif, config.rate / 2)
    return sims


def merged_summary(sims: list[RoadSim]) -> dict:
    """One summary over several drives: counts and distances add, means weigh by steps."""
    parts = [s.log.summary() for s in sims]
    steps = np.array([p["steps"] for p in parts], float)
    elapsed = sum(p["elapsed_s"] for p in parts)
    interventions = sum(p["interventions"] for p in parts)
    total = {"km": sum(p["km"] for p in parts), "interventions": interventions, "elapsed_s": elapsed,
             "autonomy": autonomy(interventions, elapsed),
             "steps": int(steps.sum()), "max_abs_offset_m": max(p["max_abs_offset_m"] for p in parts),
             "clamped": sum(s.counts["clamped"] for s in sims)}  # fmt: skip
    for key in ("mean_abs_offset_m", "mean_abs_heading_rad", "steering_jerk_rms"):
        total[key] = float(np.average([p[key] for p in parts], weights=steps))
    return total
