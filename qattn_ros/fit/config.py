"""Training configuration from YAML: model, preprocessing, data, optimizer, augmentation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..core.config_mapping import from_mapping
from ..core.errors import ConfigError
from ..core.preprocess import Preprocessing
from ..core.units import DEFAULT_VEHICLE, VehicleGeometry
from ..data.time_blocks import TimeBlocks
from ..model.config import ModelConfig


@dataclass
class DataConfig:
    train: list = field(default_factory=list)  # source specs (see data/sources.py)
    val: list = field(default_factory=list)  # empty: each train source's val time block, or its last val_fraction
    # one recording cut into train / val / test time blocks with a gap between them (when `val` is empty); None:
    # the last val_fraction of each source's frames (closed-loop rounds, whose stamps restart with each world)
    blocks: TimeBlocks | None = None
    val_fraction: float = 0.1
    cache_dir: str = "data_out/cache"
    target_unit: str | None = None  # None: the first training source's unit and sign
    target_positive_is_left: bool | None = None
    vehicle: VehicleGeometry = DEFAULT_VEHICLE  # converts between units; recorded in the checkpoint


@dataclass
class OptimConfig:
    epochs: int = 10
    batch_size: int = 64  # global, over all DDP ranks
    accumulation: int = 1  # micro-batches per rank and step
    optimizer: str = "adamw"  # adamw | sgd (momentum 0.9)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    seq_len: int = 1  # > 1 trains the recurrent model on consecutive frames
    max_steps_per_epoch: int | None = None
    # exponential moving average of the weights (and BatchNorm statistics), updated every step:
    # validation, `best` and `last` use it; 0 keeps the raw weights (see docs/method.md)
    ema_decay: float = 0.95


@dataclass
class AugmentConfig:
    flip: float = 0.5  # probability of a horizontal flip (label negated)
    brightness: float = 0.25  # brightness factor drawn from [1 - b, 1 + b]
    shift_px: int = 0  # horizontal shift drawn from [-shift_px, shift_px] model pixels
    shift_label_per_px: float = 0.0  # label change per pixel of shift to the right


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    out: str = "runs/model"
    device: str = "auto"
    progress: bool = True


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML ({error})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def set_dotted(data: dict, assignment: str) -> None:
    """Apply a 'section.key=value' override (value parsed as YAML)."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r}: expected key=value")
    key, value = assignment.split("=", 1)
    target = data
    parts = key.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ConfigError(f"override {assignment!r}: {part} is not a section")
    target[parts[-1]] = yaml.safe_load(value)


def load_train_config(
    path: str | Path | None = None, overrides: list[str] = (), model_path: str | None = None
) -> TrainConfig:
    """A training config file (its `model` may name a model YAML, relative to the file)."""
    data: dict = {}
    base = Path(".")
    if path is not None:
        path = Path(path)
        data = read_yaml(path)
        base = path.parent
    model = model_path or data.get("model") or {}
    if model_path:
        base = Path(".")
    if isinstance(model, str):
        model = read_yaml(Path(model) if Path(model).is_file() else base / model)
    data["model"] = model
    for assignment in overrides:
        set_dotted(data, assignment)
    data["model"] = ModelConfig.from_dict(data["model"])
    data["preprocessing"] = Preprocessing.from_dict(data.get("preprocessing") or {})
    for name, cls in (("data", DataConfig), ("optim", OptimConfig), ("augment", AugmentConfig)):
        data[name] = from_mapping(cls, data.get(name), name)
    if isinstance(data["data"].blocks, dict):
        data["data"].blocks = TimeBlocks.from_dict(data["data"].blocks)
    if isinstance(data["data"].vehicle, dict):
        data["data"].vehicle = VehicleGeometry.from_dict(data["data"].vehicle)
    return from_mapping(TrainConfig, data, "train config")
