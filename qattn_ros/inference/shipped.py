"""The models that ship with the package, found by name and checked against their manifest before they load.

`models/manifest.json` (installed as share/qattn_ros/models) names each model, its checkpoint, the one-line
summary of its card and the SHA-256 of every file; `default` names the one a node runs when no checkpoint is
given. A checkpoint parameter that is a shipped name (`default`, `sim_roads`, `udacity_hmb3`) resolves here;
anything else is a path, as before. A shipped file that differs from its manifest by one byte is refused by
name: what the card says must be what runs.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.atomic import file_sha256
from ..core.errors import CheckpointError

MANIFEST = "manifest.json"
DEFAULT = "default"


@dataclass(frozen=True)
class ShippedModel:
    name: str
    checkpoint: Path  # <folder>/<stem>: the .safetensors and its .json sidecar beside it
    summary: str  # the card's first line
    card: Path


def models_dir() -> Path | None:
    """Where the shipped models are: the ROS share directory, the Python environment's, or this checkout's."""
    candidates = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            candidates.append(Path(get_package_share_directory("qattn_ros")) / "models")
        except (PackageNotFoundError, OSError):  # not installed by colcon, or no ROS environment sourced
            pass
    except ImportError:  # no ROS install sourced: pip's share directory or the source tree
        pass
    candidates += [Path(sys.prefix) / "share" / "qattn_ros" / "models", Path(__file__).resolve().parents[2] / "models"]
    return next((folder for folder in candidates if (folder / MANIFEST).is_file()), None)


def manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def resolve(name: str, folder: Path | None = None) -> ShippedModel | None:
    """The shipped model `name` names, verified; None when `name` is not a shipped name (a path, then).
    `folder`: another models folder than the installed one."""
    folder = folder or models_dir()
    if folder is None and name == DEFAULT:
        raise CheckpointError(f"checkpoint {DEFAULT!r}: no shipped models here ({MANIFEST} in share/qattn_ros/models "
                              "or the source tree's models/); pass a checkpoint path")  # fmt: skip
    if folder is None or Path(name).suffix or "/" in name:
        return None
    listing = manifest(folder)
    key = listing["default"] if name == DEFAULT else name
    entry = listing["models"].get(key)
    if entry is None:
        return None
    for relative, digest in entry["sha256"].items():
        path = folder / relative
        if not path.is_file():
            raise CheckpointError(f"shipped model {key}: {path} is missing (the installation is incomplete)")
        if file_sha256(path) != digest:
            raise CheckpointError(f"shipped model {key}: {path} does not match {folder / MANIFEST} (SHA-256): "
                                  "changed or corrupt; reinstall the package")  # fmt: skip
    return ShippedModel(key, folder / entry["checkpoint"], entry["summary"], folder / entry["card"])
