"""The one record type every reader yields, and the protocol every reader follows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Record:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    steering: float  # in the source's `steering_unit`
    stamp_ns: int
    speed: float | None = None  # m/s
    mask: np.ndarray | None = None  # (H, W) bool relevance mask (synthetic data)


class Source(Protocol):
    """A readable dataset: records in time order plus the unit and sign of its steering."""

    steering_unit: str
    positive_is_left: bool

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Record]: ...

    def fingerprint(self) -> dict:
        """What identifies the source's content (paths, sizes, mtimes) for the cache key."""
        ...

    def skipped(self) -> dict[str, int]:
        """Counts of frames skipped while reading, by reason."""
        ...
