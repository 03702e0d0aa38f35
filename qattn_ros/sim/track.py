"""A road as a sequence of constant-curvature segments: straights, curves both ways, S-bends.

Tracks are seeded. `TRAINING_SEEDS` and `HELD_OUT_SEEDS` are disjoint ranges: a closed-loop
score on a held-out seed is on a road no model was tuned on (the frames models train on are
rendered from random single scenes, not from tracks at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..core.streams import stream

MAX_CURVATURE = 1 / 50  # 1/m: within the synthetic training range (|curvature| <= 1/45)
TRAINING_SEEDS = range(0, 1000)
HELD_OUT_SEEDS = range(1000, 2000)


@dataclass(frozen=True)
class Track:
    lengths: np.ndarray  # (S,) m per segment
    curvatures: np.ndarray  # (S,) 1/m, positive bends left
    seed: int | None = None

    @property
    def length(self) -> float:
        return float(self.lengths.sum())

    def curvature_at(self, s: np.ndarray | float) -> np.ndarray:
        """Curvature at arc length s (beyond the end: the last segment's)."""
        ends = np.cumsum(self.lengths)
        index = np.minimum(np.searchsorted(ends, np.asarray(s, np.float64), side="right"), len(ends) - 1)
        return self.curvatures[index]

    def mean_curvature(self, s: float, ahead: float, samples: int = 16) -> float:
        """Mean curvature over [s, s + ahead]: the one curvature the renderer draws the road ahead with."""
        return float(self.curvature_at(s + np.linspace(0.0, ahead, samples)).mean())

    def ahead(self, s: float, reach: float, step: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """(forward, left), m, of the centre line from s to s + reach in the frame of the road's tangent at s.

        Integrated from the exact heading, so an S-bend's far half bends back; beyond the end the
        last segment continues.
        """
        u = np.arange(0.0, reach, step)
        turned = self.heading_at(s + u + step / 2) - self.heading_at(np.asarray(s))
        forward = np.concatenate([[0.0], np.cumsum(np.cos(turned) * step)])
        left = np.concatenate([[0.0], np.cumsum(np.sin(turned) * step)])
        return forward, left

    def heading_at(self, s: np.ndarray) -> np.ndarray:
        """Road yaw at arc length s (rad, 0 at the start): the exact integral of the piecewise-constant curvature."""
        starts = np.concatenate([[0.0], np.cumsum(self.lengths)[:-1]])
        yaw_at_start = np.concatenate([[0.0], np.cumsum(self.lengths * self.curvatures)[:-1]])
        index = np.clip(np.searchsorted(starts, s, side="right") - 1, 0, len(starts) - 1)
        return yaw_at_start[index] + self.curvatures[index] * (s - starts[index])

    def centre_line(self, step: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(s, x, y, yaw) of the centre line in the odom frame (starts at the origin facing +x)."""
        s = np.arange(0.0, self.length + step, step)
        middle = self.heading_at(s[:-1] + step / 2)  # midpoint rule on the exact heading
        x = np.concatenate([[0.0], np.cumsum(np.cos(middle) * step)])
        y = np.concatenate([[0.0], np.cumsum(np.sin(middle) * step)])
        return s, x, y, self.heading_at(s)

    @cached_property
    def line(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The centre line every 0.25 m: what poses and plots use."""
        return self.centre_line(0.25)

    def pose(self, s: float, lateral_left: float, heading_error: float) -> tuple[float, float, float]:
        """(x, y, yaw) in odom of a vehicle `lateral_left` m left of the centre at s, `heading_error` rad left."""
        cs, x, y, yaw = self.line
        i = int(np.clip(np.searchsorted(cs, s), 0, len(cs) - 1))
        return (float(x[i] - lateral_left * np.sin(yaw[i])), float(y[i] + lateral_left * np.cos(yaw[i])),
                float(yaw[i] + heading_error))  # fmt: skip


def cut(track: Track, length_m: float) -> Track:
    """The first `length_m` of `track` (the whole of it when shorter)."""
    ends = np.cumsum(track.lengths)
    keep = int(np.searchsorted(ends, length_m)) + 1
    lengths = track.lengths[:keep].copy()
    lengths[-1] -= max(0.0, ends[keep - 1] - length_m) if keep <= len(ends) else 0.0
    return Track(lengths, track.curvatures[:keep].copy(), track.seed)


def generate_track(seed: int, length_m: float = 2000.0, max_curvature: float = MAX_CURVATURE) -> Track:
    """Straights, single curves and S-bends (two opposite curves) until `length_m`, seeded.

    `max_curvature` scales every bend: the same seed gives the same road layout, only sharper.
    """
    rng = stream("track", seed)
    lengths, curvatures = [60.0], [0.0]  # a straight start
    while sum(lengths) < length_m:
        kind = rng.choice(["straight", "curve", "s_bend"], p=[0.3, 0.4, 0.3])
        if kind == "straight":
            lengths.append(rng.uniform(40, 150))
            curvatures.append(0.0)
            continue
        curvature = rng.uniform(0.3, 1.0) * max_curvature * rng.choice([-1.0, 1.0])
        for sign in (1.0, -1.0) if kind == "s_bend" else (1.0,):
            lengths.append(rng.uniform(30, 120))
            curvatures.append(sign * curvature)
    return Track(np.asarray(lengths), np.asarray(curvatures), seed)
