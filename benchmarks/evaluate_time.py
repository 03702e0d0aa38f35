#!/usr/bin/env python3
"""How long the README's `evaluate.py --frames 100` takes, and what each saliency method costs per frame.

    python -m benchmarks.evaluate_time   # after `make demo` (its two checkpoints and test frames)

Runs the README's command as typed (both demo checkpoints, every default method, 100 frames) into a
fresh report folder and records the whole wall time and, per model and method, the seconds per frame
from the report's model.json. The random order needs no saliency and no ROAD, so it should cost no
more than the attention it is the floor of: the record keeps that ratio per model.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.record import record
from qattn_ros.core.atomic import read_json

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("kim_canny", "binary_sign")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs/demo", help="the demo's output folder (its checkpoints)")
    parser.add_argument("--data", default="data_out/synthetic/test")
    parser.add_argument("--frames", type=int, default=100)
    args = parser.parse_args()
    runs = ROOT / args.runs
    missing = [m for m in MODELS if not (runs / m / "best.safetensors").is_file()]
    if missing:
        print(f"evaluate_time: no {', '.join(missing)} checkpoint in {runs}: run `make demo` first", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "evaluation/evaluate.py",
                   *[f"--checkpoint={m}={Path(args.runs) / m / 'best'}" for m in MODELS],
                   f"--data={args.data}", f"--frames={args.frames}", f"--out={out}"]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True)
        wall_s = time.perf_counter() - started
        seconds = {m: read_json(Path(out) / m / "model.json")["seconds"] for m in MODELS}
    per_frame = {m: {method: round(s / args.frames, 3) for method, s in spent.items()} for m, spent in seconds.items()}
    random_vs_attention = {m: round(p["random"] / p["attention"], 2) for m, p in per_frame.items()}
    summary = {"wall_s": round(wall_s, 1), "frames": args.frames, "random_vs_attention": random_vs_attention}
    typed = " ".join(command[1:]).replace(out, "<a fresh folder>")
    record("evaluate_time", summary, seconds_per_frame=per_frame, seconds=seconds, evaluate_command=typed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
