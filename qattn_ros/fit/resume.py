"""What an exact resume needs beside the `last` checkpoint, in `last.optimizer.safetensors`.

Optimizer moments, the random state (dropout) and, under a weight average, the raw weights,
tagged with the step they belong to. The file is committed after `last` itself: a run stopped
in between finds a file of another step than `last` and starts these afresh, with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..core.atomic import commit, temp_beside

RESUME_FILE = "last.optimizer.safetensors"


def save_resume_state(out: Path, step: int, optimizer: torch.optim.Optimizer, raw: torch.nn.Module | None,
                      device: torch.device, save_last: Callable[[], Path]) -> Path:  # fmt: skip
    """`save_last()` (the checkpoint), then the resume state of `step` committed after it; returns its path.

    `raw`: the raw weights, when the checkpoint holds their average instead."""
    state = optimizer.state_dict()
    tensors = {f"{i}.{k}": v.contiguous().cpu() for i, s in state["state"].items() for k, v in s.items()}
    if raw is not None:
        tensors.update({f"raw.{k}": v.contiguous().cpu() for k, v in raw.state_dict().items()})
    tensors["rng.cpu"] = torch.get_rng_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    resume_file = out / RESUME_FILE
    with temp_beside(resume_file) as tmp:
        save_file(tensors, str(tmp), metadata={"step": str(step)})
        path = save_last()
        commit(tmp, resume_file)
    return path


def restore_resume_state(out: Path, step: int, optimizer: torch.optim.Optimizer, model: torch.nn.Module,
                         device: torch.device) -> None:  # fmt: skip
    """Optimizer moments, random state and raw weights saved with `last`, if they belong to its `step`."""
    resume_file = out / RESUME_FILE
    if not resume_file.is_file():
        tqdm.write(f"warning: no {resume_file} beside {out / 'last'} (stopped while saving, or saved without it): "
                   "optimizer moments and random state start afresh")  # fmt: skip
        return
    with safe_open(str(resume_file), "pt") as handle:
        saved_step = (handle.metadata() or {}).get("step")
    if saved_step is not None and int(saved_step) != step:
        tqdm.write(f"warning: {resume_file} is from step {saved_step}, {out / 'last.json'} from step {step} "
                   "(stopped while saving): optimizer moments and random state start afresh")  # fmt: skip
        return
    tensors = load_file(str(resume_file), device=str(device))
    if "rng.cpu" in tensors:
        torch.set_rng_state(tensors.pop("rng.cpu").cpu())
    if "rng.cuda" in tensors:
        rng = tensors.pop("rng.cuda").cpu()
        if device.type == "cuda":
            torch.cuda.set_rng_state(rng, device)
    raw = {k.removeprefix("raw."): tensors.pop(k) for k in [k for k in tensors if k.startswith("raw.")]}
    if raw:
        model.load_state_dict(raw)
    state = optimizer.state_dict()
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state["state"].setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(state)
