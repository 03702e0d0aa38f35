"""Write a benchmark result as benchmarks/results/<name>[.<hardware>].json: machine, command, date, summary."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path

from qattn_ros.core.atomic import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def hardware_suffix() -> str:
    import torch

    if not torch.cuda.is_available():
        return ""
    name = torch.cuda.get_device_name(0).lower()
    return "." + next((gpu for gpu in ("h200", "h100", "a100") if gpu in name), "gpu")


def command() -> str:
    """How this run was started, as it can be typed again from the repository root."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    program = f"-m {spec.name}" if spec is not None else sys.argv[0]
    return " ".join(["python", program, *sys.argv[1:]])


def record(name: str, summary: dict, **details) -> Path:
    path = RESULTS / f"{name}{hardware_suffix()}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": machine(),
        "command": command(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "summary": summary,
        **details,
    }
    write_json(path, result)
    print(json.dumps(summary, indent=2))
    print(f"recorded {path}")
    return path
