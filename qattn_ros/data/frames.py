"""Frames of several cached sources as one indexable set, labels in one target unit."""

from __future__ import annotations

import numpy as np

from ..core.units import DEFAULT_VEHICLE, VehicleGeometry, from_wheel_angle, to_wheel_angle
from .cache import CachedFrames


class FrameSet:
    """Concatenation of (parts of) cached sources; `gather` reads a batch by global index."""

    def __init__(
        self,
        parts: list[tuple[CachedFrames, np.ndarray]],
        unit: str,
        positive_is_left: bool,
        vehicle: VehicleGeometry = DEFAULT_VEHICLE,
    ) -> None:
        """`vehicle`: the geometry that converts a source's unit into `unit` (recorded in checkpoints)."""
        self.parts = [frames for frames, _ in parts]
        self.local = [np.asarray(rows, np.int64) for _, rows in parts]
        self.unit, self.positive_is_left, self.vehicle = unit, positive_is_left, vehicle
        self.offsets = np.cumsum([0] + [len(rows) for rows in self.local])
        self.targets = np.concatenate(
            [self._convert(frames, rows) for frames, rows in zip(self.parts, self.local)]
        ).astype(np.float32)

    def _convert(self, frames: CachedFrames, rows: np.ndarray) -> np.ndarray:
        values = frames.steering[rows].astype(np.float64)
        if (frames.steering_unit, frames.positive_is_left) == (self.unit, self.positive_is_left):
            return values
        return np.array(
            [
                from_wheel_angle(
                    to_wheel_angle(v, frames.steering_unit, frames.positive_is_left, self.vehicle),
                    self.unit,
                    self.positive_is_left,
                    self.vehicle,
                )
                for v in values
            ]
        )

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def has_masks(self) -> bool:
        return all(frames.masks is not None for frames in self.parts)

    def _locate(self, indices: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(part, positions in the batch, rows in that part's cache) for each part touched."""
        part_of = np.searchsorted(self.offsets, indices, side="right") - 1
        located = []
        for part in np.unique(part_of):
            where = np.nonzero(part_of == part)[0]
            located.append((int(part), where, self.local[part][indices[where] - self.offsets[part]]))
        return located

    def gather(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, h, w, 3) uint8 images and (B,) float32 targets."""
        indices = np.asarray(indices, np.int64)
        first = self.parts[0].images
        images = np.empty((len(indices), *first.shape[1:]), np.uint8)
        for part, where, rows in self._locate(indices):
            order = np.argsort(rows)  # memmaps read fastest in ascending order
            images[where[order]] = self.parts[part].images[rows[order]]
        return images, self.targets[indices]

    def gather_masks(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, np.int64)
        first = self.parts[0].images
        masks = np.zeros((len(indices), *first.shape[1:3]), np.uint8)
        for part, where, rows in self._locate(indices):
            if self.parts[part].masks is not None:
                masks[where] = self.parts[part].masks[rows]
        return masks

    def sequence_starts(self, length: int) -> np.ndarray:
        """Global indices that start `length` consecutive frames within one part."""
        starts = [self.offsets[p] + np.arange(max(len(rows) - length + 1, 0)) for p, rows in enumerate(self.local)]
        return np.concatenate(starts).astype(np.int64)
