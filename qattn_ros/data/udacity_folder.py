"""Extracted Udacity data: udacity-driving-reader folders and the Challenge 2 test set.

udacity-driving-reader writes `interpolated.csv` (index,timestamp,width,height,frame_id,
filename,angle,torque,speed,lat,long,alt) with one row per camera image, and the images
under center/, left/, right/. Rows of `frame_id == center_camera` are used, joined to
their image by the filename column (timestamps in the CSV are rounded).

The Challenge 2 test set is `CH2_final_evaluation.csv` (frame_id,steering_angle,public;
frame_id = camera stamp in ns) with the images as center/<frame_id>.jpg.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..core.errors import DataError
from .image_list import ImageListSource

INTERPOLATED_COLUMNS = ("timestamp", "frame_id", "filename", "angle", "speed")
CH2_COLUMNS = ("frame_id", "steering_angle")


def _read_csv(path: Path, needed: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in needed if c not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(header) or 'nothing'})")
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


class UdacityFolderSource(ImageListSource):
    """An udacity-driving-reader output folder (steering-wheel angle in rad, positive left)."""

    steering_unit = "steering_wheel_rad"
    positive_is_left = True

    def __init__(self, path: str | Path, camera: str = "center_camera") -> None:
        root = Path(path)
        csv_path = root / "interpolated.csv" if root.is_dir() or not root.suffix else root
        if not root.exists():
            raise DataError(f"Udacity folder not found: {root}")
        items = []
        for number, row in enumerate(_read_csv(csv_path, INTERPOLATED_COLUMNS), start=2):
            if row["frame_id"] != camera:
                continue
            image = csv_path.parent / row["filename"]
            try:  # the image name holds the exact stamp; the CSV's may be rounded
                stamp = int(image.stem) if image.stem.isdigit() else int(float(row["timestamp"]))
                item = (image, float(row["angle"]), stamp, float(row["speed"]) if row["speed"] else None)
            except ValueError:
                raise DataError(f"{csv_path}: line {number}: angle/speed/timestamp not a number") from None
            items.append(item)
        super().__init__(csv_path, items)


class Ch2TestSource(ImageListSource):
    """Challenge 2 test images labelled by CH2_final_evaluation.csv (unlabelled images ignored)."""

    steering_unit = "steering_wheel_rad"
    positive_is_left = True

    def __init__(self, labels: str | Path, images: str | Path) -> None:
        labels, folder = Path(labels), Path(images)
        if not folder.is_dir():
            raise DataError(f"Challenge 2 image folder not found: {folder}")
        items = []
        for number, row in enumerate(_read_csv(labels, CH2_COLUMNS), start=2):
            try:
                stamp, angle = int(row["frame_id"]), float(row["steering_angle"])
            except ValueError:
                raise DataError(f"{labels}: line {number}: frame_id/steering_angle not a number") from None
            items.append((folder / f"{stamp}.jpg", angle, stamp, None))
        super().__init__(labels, items)
