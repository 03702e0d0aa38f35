"""A source whose frames are image files listed with their labels (folders, CSV logs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..core.errors import DataError
from .images import read_mask, read_rgb
from .record import Record


class ImageListSource:
    """Records from (image path, steering, stamp, speed) items listed in a CSV file.

    Subclasses set `steering_unit` and `positive_is_left`. Images that do not exist are
    named up front; images that do not decode are skipped and counted while reading.
    """

    steering_unit: str
    positive_is_left: bool

    def __init__(self, csv_path: Path, items: list[tuple[Path, float, int, float | None]]) -> None:
        self.csv_path = csv_path
        self.items = sorted(items, key=lambda item: item[2])  # time order (stable for equal stamps)
        missing = [str(path) for path, *_ in self.items if not path.is_file()]
        if missing:
            raise DataError(f"{csv_path}: {len(missing)} image(s) do not exist, first: {', '.join(missing[:3])}")
        if not self.items:
            raise DataError(f"{csv_path}: no frames")
        self._skipped = {"corrupt_image": 0}

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Record]:
        for path, steering, stamp, speed in self.items:
            try:
                image = read_rgb(path)
            except DataError:
                self._skipped["corrupt_image"] += 1
                continue
            mask = self.mask_path(path)
            yield Record(
                image=image, steering=steering, stamp_ns=stamp, speed=speed, mask=read_mask(mask) if mask else None
            )

    def mask_path(self, image: Path) -> Path | None:
        """Where the relevance mask of `image` would be (None: this source has none)."""
        return None

    def fingerprint(self) -> dict:
        stat = self.csv_path.stat()
        images = [path.stat() for path, *_ in self.items]
        return {
            "kind": type(self).__name__,
            "csv": str(self.csv_path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "image_bytes": sum(s.st_size for s in images),
            "image_mtime_ns": max(s.st_mtime_ns for s in images),  # replaced images invalidate the cache
        }

    def skipped(self) -> dict[str, int]:
        return dict(self._skipped)
