"""The one device picker: auto | cpu | cuda | cuda:N, refused clearly when it cannot be had."""

from __future__ import annotations

import torch

from .errors import ConfigError


def pick_device(name: str | torch.device) -> torch.device:
    """`auto` takes the first GPU when CUDA is available, else the CPU."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name}: CUDA is not available here; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device={name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise ConfigError(f"device={name!r}: expected auto, cpu, cuda or cuda:N")
    return device
