"""Open any supported data source from a config mapping {kind: ..., ...}.

{kind: simlog, path: data/driving_log.csv, cameras: [center, left, right], side_correction: 0.2}
{kind: udacity_bag, paths: [HMB_1.bag, HMB_2.bag], min_speed: 1.0}
{kind: udacity_folder, path: output/HMB_1}
{kind: ch2_test, labels: CH2_final_evaluation.csv, images: center}
{kind: ros2_bag, path: run1, camera_topic: /camera/image_raw/compressed, steering_topic: /steering,
 steering_field: data, steering_unit: wheel_rad, positive_is_left: true, custom_types: {pkg/msg/T: "float32 x"}}
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

import yaml

from ..core.errors import DataError
from .record import Source

# kind -> (module, reader); a reader's module is imported only when that kind is opened, so
# training on simulator logs needs neither rosbags nor anything else the bag readers use.
KINDS = {
    "simlog": ("simlog", "SimLogSource"),
    "udacity_bag": ("bags", "udacity_bag"),
    "udacity_folder": ("udacity_folder", "UdacityFolderSource"),
    "ch2_test": ("udacity_folder", "Ch2TestSource"),
    "ros2_bag": ("bags", "ros2_bag"),
}


def spec_for_path(path: str | Path) -> dict:
    """The source a path holds, told by its layout: a ROS 1 bag (Udacity Challenge 2 topics), a ROS 2
    bag folder (metadata.yaml; the layout `training/make_data.py` writes), an udacity-driving-reader
    folder (interpolated.csv), the Challenge 2 test layout (CH2_final_evaluation.csv + center/) or a
    simulator log (driving_log.csv)."""
    path = Path(path)
    if path.suffix == ".bag":
        return {"kind": "udacity_bag", "paths": [str(path)]}
    if (path / "metadata.yaml").is_file():
        return {"kind": "ros2_bag", "path": str(path), "camera_topic": "/camera/image_raw/compressed",
                "steering_topic": "/steering"}  # fmt: skip
    if (path / "interpolated.csv").is_file():
        return {"kind": "udacity_folder", "path": str(path)}
    if (path / "CH2_final_evaluation.csv").is_file():
        return {"kind": "ch2_test", "labels": str(path / "CH2_final_evaluation.csv"), "images": str(path / "center")}
    if path.suffix == ".csv" or (path / "driving_log.csv").is_file():
        return {"kind": "simlog", "path": str(path)}
    raise DataError(
        f"{path}: not a recognised dataset (a .bag, a ROS 2 bag folder, an interpolated.csv or "
        "CH2_final_evaluation.csv folder, or a driving_log.csv); pass a mapping {kind: ..., ...} instead"
    )


def spec_from_text(text: str) -> dict:
    """A data source as given on a command line or a parameter: a YAML mapping {kind: ...} or a path."""
    spec = yaml.safe_load(text) if text.strip().startswith("{") else spec_for_path(text)
    if not isinstance(spec, dict):
        raise DataError(f"data source {text!r}: expected a path or a mapping {{kind: ..., ...}}")
    return spec


def open_source(spec: dict | str) -> Source:
    """`spec` is a mapping with `kind` and the reader's arguments, or a path (see `spec_for_path`)."""
    if isinstance(spec, str | Path):
        spec = spec_for_path(spec)
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in KINDS:
        raise DataError(f"data source kind {kind!r} unknown; expected one of {', '.join(KINDS)}")
    module, reader = KINDS[kind]
    try:
        return getattr(import_module(f"{__package__}.{module}"), reader)(**spec)
    except TypeError as error:
        raise DataError(f"data source {kind}: {error}") from None
