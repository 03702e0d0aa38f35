"""Write a synthetic road dataset as train / val / test splits in one of the real formats.

Splits draw from streams of their own (qattn_ros/core/streams.py), so held-out frames are never seen in training. The
bag and folder writers (and with them rosbags) are imported only for those formats.
"""

from __future__ import annotations

from pathlib import Path

from ..core.atomic import write_json
from .simlog import write_simlog
from .synthetic import RoadGenerator

SPLIT_PURPOSES = {split: f"split:{split}" for split in ("train", "val", "test")}
FORMATS = ("simlog", "udacity_bag", "udacity_folder", "ch2_test", "ros2_bag")
LABEL_UNITS = {"simlog": "sim_normalized", "ros2_bag": "wheel_rad"}  # the others: steering_wheel_rad


def write_split(fmt: str, out: Path, generator: RoadGenerator, count: int, side_cameras: bool = False) -> None:
    if fmt == "simlog":
        write_simlog(out, generator, count, side_cameras=side_cameras)
        return
    from . import writers

    if fmt == "udacity_bag":
        writers.write_udacity_bag(out.with_suffix(".bag"), generator, count)
    elif fmt == "udacity_folder":
        writers.write_udacity_folder(out, generator, count)
    elif fmt == "ch2_test":
        writers.write_ch2_test(out, generator, count)
    elif fmt == "ros2_bag":
        writers.write_ros2_bag(out, generator, count)
    else:
        raise ValueError(f"format {fmt!r} unknown; expected one of {', '.join(FORMATS)}")


def write_splits(
    out: str | Path,
    counts: dict[str, int],
    height: int = 160,
    width: int = 320,
    seed: int = 0,
    fmt: str = "simlog",
    side_cameras: bool = False,
) -> Path:
    """One folder per split in `counts` ({"train": n, ...}, 0 skips), and `meta.json` saying how."""
    out = Path(out)
    for split, count in counts.items():
        if count > 0:
            generator = RoadGenerator(height, width, seed=seed, purpose=SPLIT_PURPOSES[split])
            write_split(fmt, out / split, generator, count, side_cameras)
    meta = {"format": fmt, "counts": counts, "height": height, "width": width, "seed": seed,
            "side_cameras": side_cameras, "split_streams": SPLIT_PURPOSES,
            "label_unit": LABEL_UNITS.get(fmt, "steering_wheel_rad")}  # fmt: skip
    write_json(out / "meta.json", meta)
    return out
