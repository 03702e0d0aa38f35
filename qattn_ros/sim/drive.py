"""Drive a track headless with a steering function: the closed loop without ROS."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from ..data.synthetic import SyntheticFrame
from .world import RoadSim


def drive(
    sim: RoadSim,
    steer: Callable[[SyntheticFrame], float],
    speed: float,
    progress: bool = True,
    on_frame: Callable[[SyntheticFrame, float], None] | None = None,
) -> RoadSim:
    """Render, steer (front-wheel rad, positive left), step, until the end of the track."""
    bar = tqdm(total=round(sim.track.length), desc=f"drive seed {sim.track.seed}", unit="m", disable=not progress)
    while not sim.done:
        frame = sim.frame()
        angle = steer(frame)
        if on_frame is not None:
            on_frame(frame, angle)
        sim.step(speed, angle)
        bar.update(round(sim.s) - bar.n)
        bar.set_postfix(interventions=len(sim.log.interventions), offset=f"{np.abs(sim.n):.2f}")
    bar.close()
    return sim
