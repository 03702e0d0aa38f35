"""Udacity simulator logs: driving_log.csv + IMG/, steering in [-1, 1] x 25 deg, positive right.

Columns center,left,right,steering,throttle,brake,speed (mph); the header row is optional.
Image paths may be absolute paths of the recording machine: when such a path does not
exist, the file of the same name in IMG/ beside the CSV is used.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path, PureWindowsPath

from tqdm import tqdm

from ..core.atomic import write_csv
from ..core.errors import DataError
from .image_list import ImageListSource
from .images import write_mask, write_rgb
from .synthetic import RoadGenerator

COLUMNS = ("center", "left", "right", "steering", "throttle", "brake", "speed")
MPH_TO_MS = 0.44704
FRAME_PERIOD_NS = 50_000_000
_STAMP = re.compile(r"(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{3})")


def _stamp_from_name(name: str) -> int | None:
    match = _STAMP.search(name)
    if not match:
        return None
    y, mo, d, h, mi, s, ms = (int(g) for g in match.groups())
    moment = dt.datetime(y, mo, d, h, mi, s, ms * 1000, tzinfo=dt.timezone.utc)
    return int(moment.timestamp()) * 1_000_000_000 + ms * 1_000_000


def _read_rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"{csv_path}: empty driving log")
    header = [cell.strip().lower() for cell in rows[0]]
    if "center" in header or "steering" in header:
        missing = [c for c in ("center", "steering") if c not in header]
        if missing:
            raise DataError(f"{csv_path}: missing column(s) {', '.join(missing)} (has {', '.join(header)})")
        return [dict(zip(header, (cell.strip() for cell in row))) for row in rows[1:]]
    if len(rows[0]) < len(COLUMNS):
        raise DataError(
            f"{csv_path}: expected {len(COLUMNS)} columns {','.join(COLUMNS)} without a header, got {len(rows[0])}"
        )
    return [dict(zip(COLUMNS, (cell.strip() for cell in row))) for row in rows]


class SimLogSource(ImageListSource):
    """Records of a simulator log; `cameras` picks center/left/right, the side ones corrected."""

    steering_unit = "sim_normalized"
    positive_is_left = False

    def __init__(self, path: str | Path, cameras: tuple[str, ...] = ("center",), side_correction: float = 0.2) -> None:
        path = Path(path)
        self.csv_path = path / "driving_log.csv" if path.is_dir() else path
        if not self.csv_path.is_file():
            raise DataError(f"simulator log not found: {self.csv_path}")
        self.root = self.csv_path.parent
        unknown = [c for c in cameras if c not in ("center", "left", "right")]
        if unknown:
            raise DataError(f"cameras: unknown camera(s) {unknown}; use center, left, right")
        self.cameras = tuple(cameras)
        self.side_correction = side_correction
        items: list[tuple[Path, float, int, float | None]] = []
        for index, row in enumerate(_read_rows(self.csv_path)):
            try:
                steering = float(row["steering"])
                speed = float(row["speed"]) * MPH_TO_MS if row.get("speed") else None
            except ValueError:
                raise DataError(f"{self.csv_path}: row {index + 1}: steering/speed not a number: {row}") from None
            for camera in cameras:
                if not row.get(camera):
                    raise DataError(f"{self.csv_path}: row {index + 1}: empty {camera!r} column")
                image = self._resolve(row[camera])
                stamp = _stamp_from_name(image.name)
                stamp = stamp if stamp is not None else index * FRAME_PERIOD_NS
                correction = {"center": 0.0, "left": side_correction, "right": -side_correction}[camera]
                items.append((image, steering + correction, stamp, speed))
        super().__init__(self.csv_path, items)

    def _resolve(self, name: str) -> Path:
        path = Path(name)
        if not path.is_absolute():
            path = self.root / path
        if path.is_file():
            return path
        return self.root / "IMG" / PureWindowsPath(name).name  # recorded on another machine

    def mask_path(self, image: Path) -> Path:
        return self.root / "masks" / (image.stem + ".png")

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "cameras": list(self.cameras), "side_correction": self.side_correction}


def write_simlog(
    folder: str | Path,
    generator: RoadGenerator,
    count: int,
    start: int = 0,
    side_cameras: bool = False,
    camera_shift: float = 0.8,
) -> Path:
    """Render `count` synthetic frames into a simulator log (+ masks/); returns the CSV path."""
    from ..core.units import from_wheel_angle

    folder = Path(folder)
    base = dt.datetime(2016, 12, 1, 13, 30, 48, tzinfo=dt.timezone.utc)
    rows = []
    for index in tqdm(range(start, start + count), desc=f"render {folder.name}", unit="frame"):
        moment = base + dt.timedelta(milliseconds=50 * index)
        stamp = moment.strftime("%Y_%m_%d_%H_%M_%S_") + f"{moment.microsecond // 1000:03d}"
        names = {}
        for camera, shift in (("center", 0.0), ("left", -camera_shift), ("right", camera_shift)):
            if camera != "center" and not side_cameras:
                names[camera] = ""
                continue
            frame = generator.frame(index, camera_shift=shift)
            names[camera] = f"IMG/{camera}_{stamp}.jpg"
            write_rgb(folder / names[camera], frame.image)
            write_mask(folder / "masks" / f"{camera}_{stamp}.png", frame.mask)
            if camera == "center":
                centre = frame
        steering = min(max(from_wheel_angle(centre.steering, "sim_normalized", positive_is_left=False), -1.0), 1.0)
        rows.append(
            [
                names["center"],
                names["left"],
                names["right"],
                f"{steering:.6f}",
                "0.5",
                "0",
                f"{centre.scene.speed / MPH_TO_MS:.4f}",
            ]
        )
    return write_csv(folder / "driving_log.csv", COLUMNS, rows)  # last: a log without it is unfinished
