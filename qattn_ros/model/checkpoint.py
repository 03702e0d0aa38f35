"""Checkpoints: weights in safetensors plus a JSON sidecar; loading never unpickles.

`name.safetensors` holds every parameter and buffer; `name.json` holds the model config,
preprocessing, the steering unit and sign, a data summary, metrics, and the SHA-256 of
the weights file so that a corrupted file is refused before it is parsed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ConfigError, ModelConfig
from .network import SteeringNet

FORMAT = "qattn_ros.checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt or does not match its config; the message says which."""


@dataclass
class CheckpointInfo:
    model: ModelConfig
    preprocessing: dict
    steering_unit: str
    positive_is_left: bool
    data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, sidecar) for 'x', 'x.safetensors' or 'x.json'."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, model: SteeringNet, info: CheckpointInfo) -> Path:
    """Write weights and sidecar atomically (temp file + rename); returns the weights path."""
    weights, sidecar = checkpoint_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp_weights = weights.with_name(weights.name + ".tmp")
    save_file(state, str(tmp_weights), metadata={"format": FORMAT})
    meta = {
        "format": FORMAT,
        "weights": weights.name,
        "weights_sha256": _sha256(tmp_weights),
        "model": info.model.to_dict(),
        "preprocessing": info.preprocessing,
        "steering_unit": info.steering_unit,
        "positive_is_left": info.positive_is_left,
        "data": info.data,
        "metrics": info.metrics,
        "training": info.training,
    }
    tmp_sidecar = sidecar.with_name(sidecar.name + ".tmp")
    tmp_sidecar.write_text(json.dumps(meta, indent=2, sort_keys=True))
    tmp_weights.replace(weights)
    tmp_sidecar.replace(sidecar)
    return weights


def read_info(path: str | Path) -> CheckpointInfo:
    """The sidecar alone, validated (no weights read)."""
    return _read_sidecar(path)[0]


def _read_sidecar(path: str | Path) -> tuple[CheckpointInfo, dict]:
    """(validated info, raw sidecar mapping)."""
    _, sidecar = checkpoint_paths(path)
    if not sidecar.is_file():
        raise CheckpointError(f"checkpoint sidecar not found: {sidecar}")
    try:
        meta = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{sidecar}: not valid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{sidecar}: not a {FORMAT} sidecar (format={meta.get('format') if isinstance(meta, dict) else None!r})"
        )
    missing = [
        k for k in ("model", "preprocessing", "steering_unit", "positive_is_left", "weights_sha256") if k not in meta
    ]
    if missing:
        raise CheckpointError(f"{sidecar}: missing key(s) {', '.join(missing)}")
    try:
        model = ModelConfig.from_dict(meta["model"])
    except (ConfigError, TypeError) as error:
        raise CheckpointError(f"{sidecar}: {error}") from None
    info = CheckpointInfo(
        model=model,
        preprocessing=meta["preprocessing"],
        steering_unit=meta["steering_unit"],
        positive_is_left=bool(meta["positive_is_left"]),
        data=meta.get("data", {}),
        metrics=meta.get("metrics", {}),
        training=meta.get("training", {}),
    )
    return info, meta


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[SteeringNet, CheckpointInfo]:
    """Build the model from the sidecar and load the verified weights, in eval mode."""
    weights, sidecar = checkpoint_paths(path)
    if not weights.is_file():
        raise CheckpointError(f"checkpoint weights not found: {weights}")
    info, meta = _read_sidecar(path)
    if _sha256(weights) != meta["weights_sha256"]:
        raise CheckpointError(f"{weights}: SHA-256 does not match {sidecar.name}; the file is corrupt or was replaced")
    try:
        state = load_file(str(weights))
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
