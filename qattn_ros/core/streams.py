"""Random streams named by what they are for, so two uses never share one whatever numbers they are given.

A stream is numpy's SeedSequence over (its purpose's tag, keys...). Before, a static split seeded 1002 and a
simulator road seeded 2 drew from the same numbers ([seed, index, 2]) and so showed the same looks: held-out
data could repeat training data through a shared stream. Every purpose is listed in PURPOSES; their tags are
distinct (checked below), so a static frame, a simulator zone, a track's shape and a training world's
conditions given the same keys draw different values.
"""

from __future__ import annotations

import hashlib

import numpy as np

PURPOSES = (
    "frames",  # RoadGenerator frames made for a test or a picture
    "split:train",  # training_data/make_data.py's static splits
    "split:val",
    "split:test",
    "sim_world",  # the simulator's roadside, zone looks, cars and camera noise (training worlds and the sweep)
    "sim_gust",
    "track",  # a track's curvature profile
    "training_worlds",  # a closed-loop round's randomized conditions
    "rollout",  # a closed-loop round's beta coin and recovery views
)


def tag(purpose: str) -> int:
    if purpose not in PURPOSES:
        raise ValueError(f"random stream purpose {purpose!r} unknown; known: {', '.join(PURPOSES)}")
    return int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:8], "little")


if len({tag(purpose) for purpose in PURPOSES}) != len(PURPOSES):
    raise AssertionError("two random stream purposes share a tag")


def stream(purpose: str, *keys: int) -> np.random.Generator:
    """The generator of `purpose` for `keys` (non-negative integers: seeds, indices, salts)."""
    return np.random.default_rng(np.random.SeedSequence([tag(purpose), *(int(key) for key in keys)]))
