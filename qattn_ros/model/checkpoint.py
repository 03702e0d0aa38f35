"""Checkpoints: weights in safetensors plus a JSON sidecar; loading never unpickles.

`name.safetensors` holds every parameter and buffer; `name.json` holds the model config,
the preprocessing, the steering unit and sign, the vehicle geometry the labels were
converted with, a data summary, metrics, and the SHA-256 of the weights file so that a
corrupted file is refused before it is parsed. This bundle is the contract between
training and every consumer (`qattn_ros.inference.predictor`).

A save is crash-safe (`commit_pair`): killed at any point, it leaves the previous checkpoint
or the new one loadable, never neither. The new sidecar is written whole to `name.json.pending`
first; renaming the new weights over the old is the commit; the pending sidecar then replaces
the old one. A reader that finds the weights committed but the sidecar still pending takes the
pending sidecar (its SHA-256 names these weights); temporary files a killed save left behind are
refused by name, and removed by the next save into the folder once their writer no longer runs
(`remove_leftovers`).

A load may run while another process saves the same checkpoint: it reads the weights and the sidecar
between two looks at the three files (weights, sidecar, pending sidecar), and reads again, a bounded
number of times, when a save replaced any of them meanwhile; only a pair read while nothing changed is
used or refused (a SHA-256 that does not match the unchanged files is a corruption).

Format history: /1 had no vehicle geometry; it loads with the default geometry and a note
in `CheckpointInfo.notes` saying so. `camera` (the size of the training frames and the box of
them the model saw) came later within /2: a sidecar without it loads with frames of the model
input's aspect assumed, and a note.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from ..core.atomic import commit, file_sha256, fsync, leftover_of, remove_leftovers, temp_beside, write_text
from ..core.errors import CheckpointError, ConfigError
from ..core.preprocess import CameraGeometry, Preprocessing
from ..core.units import DEFAULT_VEHICLE, VehicleGeometry, check_unit
from .config import ModelConfig
from .network import SteeringNet

FORMAT = "qattn_ros.checkpoint/2"
OLD_FORMATS = ("qattn_ros.checkpoint/1",)
READ_TRIES = 50  # reads of a checkpoint that saves keep replacing before a load gives up (about 2.5 s)


@dataclass
class CheckpointInfo:
    model: ModelConfig
    preprocessing: Preprocessing
    steering_unit: str
    positive_is_left: bool
    vehicle: VehicleGeometry = DEFAULT_VEHICLE  # what converted the labels into `steering_unit`
    camera: CameraGeometry | None = None  # the training frames; None: not recorded (mixed or unknown)
    data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what loading an older format defaulted (not saved)
    # the weights' SHA-256 as the sidecar records it (verified by load_checkpoint): the checkpoint's identity,
    # which keys every result computed from it (not saved; "" for an unsaved model)
    sha256: str = field(default="", compare=False)


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, sidecar) for 'x', 'x.safetensors' or 'x.json'; a save's temporary leftover is refused."""
    path = Path(path)
    if (target := leftover_of(path)) is not None:
        raise CheckpointError(f"{path} is a temporary file of a save that did not finish; load {target}")
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def pending_sidecar(sidecar: Path) -> Path:
    """Where a save keeps the new sidecar until its weights are in place."""
    return sidecar.with_name(sidecar.name + ".pending")


def commit_pair(written: Path, weights: Path, sidecar: Path, meta: dict) -> None:
    """Put weights written to a temporary file beside `weights` in place with `meta` as their sidecar, so that
    a crash at any point leaves the old pair or the new one loadable (see the module's docstring)."""
    pending = pending_sidecar(sidecar)
    write_text(pending, json.dumps(meta, indent=2, sort_keys=True))
    commit(written, weights)  # the commit: from here on the pending sidecar describes the weights on disk
    os.replace(pending, sidecar)
    fsync(sidecar.parent)


def save_checkpoint(path: str | Path, model: SteeringNet, info: CheckpointInfo) -> Path:
    """Write weights and sidecar as one crash-safe commit (`commit_pair`); returns the weights path."""
    weights, sidecar = checkpoint_paths(path)
    remove_leftovers(weights.parent)  # what saves killed before their cleanup left here
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with temp_beside(weights) as written:
        save_file(state, str(written), metadata={"format": FORMAT})
        meta = {
            "format": FORMAT,
            "weights": weights.name,
            "weights_sha256": file_sha256(written),
            "model": info.model.to_dict(),
            "preprocessing": info.preprocessing.to_dict(),
            "steering_unit": info.steering_unit,
            "positive_is_left": info.positive_is_left,
            "vehicle": info.vehicle.to_dict(),
            **({"camera": info.camera.to_dict(info.preprocessing)} if info.camera is not None else {}),
            "data": info.data,
            "metrics": info.metrics,
            "training": info.training,
        }
        commit_pair(written, weights, sidecar, meta)
    return weights


def current_sidecar(weights: Path, sidecar: Path, weights_sha256: str | None = None) -> Path:
    """The sidecar describing the weights on disk: `sidecar`, or the pending one of a save that was stopped
    between its two renames (its recorded SHA-256 is that of the weights)."""
    pending = pending_sidecar(sidecar)
    if not pending.is_file() or not weights.is_file():
        return sidecar
    try:
        recorded = json.loads(pending.read_text()).get("weights_sha256")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):  # OSError: renamed meanwhile
        return sidecar
    return pending if recorded == (weights_sha256 or file_sha256(weights)) else sidecar


def checkpoint_saved(path: str | Path) -> bool:
    """Whether a save of `path` got to its commit: its weights are on disk (`load_checkpoint` loads them with the
    sidecar or the pending one describing them), or its sidecar is (the weights missing: `load_checkpoint`
    refuses it by name). A pending sidecar alone is a first save stopped before its commit: nothing saved."""
    weights, sidecar = checkpoint_paths(path)
    return weights.is_file() or sidecar.is_file()


def _identity(path: Path) -> tuple | None:
    """What changes when a save replaces `path` (every writer here renames a new file over it)."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns


def _consistent(path: str | Path, read: Callable[[], object]) -> object:
    """`read()` of the checkpoint's files, done while none of them changed: retried (READ_TRIES times at most)
    while a concurrent save replaces the weights, the sidecar or the pending sidecar under it. Its result or its
    error (CheckpointError, OSError) counts only when the files were the same before and after it."""
    weights, sidecar = checkpoint_paths(path)
    files = (weights, sidecar, pending_sidecar(sidecar))
    for attempt in range(READ_TRIES):
        before = [_identity(p) for p in files]
        try:
            result, error = read(), None
        except (CheckpointError, OSError) as raised:
            result, error = None, raised
        if [_identity(p) for p in files] == before:
            if error is not None:
                raise error
            return result
        time.sleep(min(0.01 * (attempt + 1), 0.05))  # a save's renames take milliseconds
    raise CheckpointError(f"{weights}: replaced by a save during each of {READ_TRIES} reads; load it again later")


def read_info(path: str | Path) -> CheckpointInfo:
    """The sidecar alone, validated (no weights read unless a pending sidecar must be matched to them)."""
    return _consistent(path, lambda: _read_sidecar(path)[0])


def _read_sidecar(path: str | Path, weights_sha256: str | None = None) -> tuple[CheckpointInfo, dict]:
    """(validated info, raw sidecar mapping) of the current sidecar (`weights_sha256`: of the weights read)."""
    weights, sidecar = checkpoint_paths(path)
    return parse_sidecar(current_sidecar(weights, sidecar, weights_sha256))


def parse_sidecar(sidecar: Path) -> tuple[CheckpointInfo, dict]:
    """(validated info, raw mapping) of one sidecar file."""
    if not sidecar.is_file():
        raise CheckpointError(f"checkpoint sidecar not found: {sidecar}")
    try:
        meta = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{sidecar}: not valid JSON ({error})") from None
    version = meta.get("format") if isinstance(meta, dict) else None
    if version != FORMAT and version not in OLD_FORMATS:
        raise CheckpointError(f"{sidecar}: not a {FORMAT} sidecar (format={version!r})")
    missing = [
        k for k in ("model", "preprocessing", "steering_unit", "positive_is_left", "weights_sha256") if k not in meta
    ]
    if version == FORMAT and "vehicle" not in meta:
        missing.append("vehicle")
    if missing:
        raise CheckpointError(f"{sidecar}: missing key(s) {', '.join(missing)}")
    notes = []
    if "vehicle" not in meta:
        notes.append(f"{sidecar.name} is {version}: no vehicle geometry recorded, defaulted to {DEFAULT_VEHICLE}")
    try:
        preprocessing = Preprocessing.from_dict(meta["preprocessing"])
        camera = CameraGeometry.from_dict(meta["camera"], preprocessing) if "camera" in meta else None
        if camera is None:
            assumed = CameraGeometry.of_model_input(preprocessing)
            notes.append(f"{sidecar.name} records no camera geometry: frames of the model input's aspect "
                         f"{assumed.aspect:.2f}:1 assumed; a camera of another aspect is cropped to it")  # fmt: skip
        info = CheckpointInfo(
            model=ModelConfig.from_dict(meta["model"]),
            preprocessing=preprocessing,
            steering_unit=check_unit(meta["steering_unit"]),
            positive_is_left=bool(meta["positive_is_left"]),
            vehicle=VehicleGeometry.from_dict(meta["vehicle"]) if "vehicle" in meta else DEFAULT_VEHICLE,
            camera=camera,
            data=meta.get("data", {}),
            metrics=meta.get("metrics", {}),
            training=meta.get("training", {}),
            notes=notes,
            sha256=meta["weights_sha256"],
        )
    except (ConfigError, TypeError) as error:
        raise CheckpointError(f"{sidecar}: {error}") from None
    return info, meta


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[SteeringNet, CheckpointInfo]:
    """Build the model from the sidecar and load the verified weights, in eval mode."""
    weights, sidecar = checkpoint_paths(path)

    def read() -> tuple[bytes, CheckpointInfo]:
        if not weights.is_file():
            raise CheckpointError(f"checkpoint weights not found: {weights}")
        data = weights.read_bytes()  # hashed and parsed from the same bytes
        digest = hashlib.sha256(data).hexdigest()
        info, meta = _read_sidecar(path, digest)
        if digest != meta["weights_sha256"]:
            raise CheckpointError(
                f"{weights}: SHA-256 does not match {sidecar.name}; the file is corrupt or was replaced"
            )
        return data, info

    # a save can interleave (weights read before its commit, the sidecar after it): only a read during which none
    # of the files changed counts, so that a mismatch refused is a corruption, not a save in progress
    data, info = _consistent(path, read)
    try:
        state = load(data)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({error})") from None
    model = SteeringNet(info.model)
    wanted = model.state_dict()
    missing = sorted(set(wanted) - set(state))
    unexpected = sorted(set(state) - set(wanted))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: weights do not match the config in {sidecar.name} (variant={info.model.variant}): "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for key, tensor in wanted.items():
        if tensor.shape != state[key].shape:
            raise CheckpointError(
                f"{weights}: tensor {key!r} has shape {tuple(state[key].shape)}, the config in {sidecar.name} "
                f"needs {tuple(tensor.shape)}"
            )
    model.load_state_dict(state)
    return model.to(device).eval(), info
