#!/usr/bin/env python3
"""Closed-loop autonomy of trained checkpoints, and how fast the simulator steps with the node in the loop.

    python -m benchmarks.closed_loop [--checkpoint NAME=PATH ...] [--km 2]

Autonomy (NVIDIA's: 1 - interventions x 6 s / elapsed), interventions and mean |offset| of
each checkpoint on the same held-out track (`--km` each, 15 m/s, 20 Hz camera, 320x160),
driven headless through `qattn_ros.sim` exactly as `training/closed_loop.py` does. `sim_fps`:
lockstep steps per second of `qattn_sim` — the simulator node and the steering node (the
first checkpoint) as two processes over Fast DDS — on `--node-km` of the same track.
Defaults: the `make demo` checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.record import record
from qattn_ros.predictor import SteeringPredictor
from qattn_ros.ros.dds_domain import claim_domain_id
from qattn_ros.sim.drive import drive_predictor, merged_summary
from qattn_ros.sim.track import HELD_OUT_SEEDS, generate_track
from qattn_ros.sim.world import SimConfig

DEMO = ["quant_sign=runs/demo/quant_sign/best", "kim_canny=runs/demo/kim_canny/best"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", help="NAME=PATH (default: the make demo checkpoints)")
    parser.add_argument("--km", type=float, default=2.0)
    parser.add_argument("--speed", type=float, default=15.0)
    parser.add_argument("--node-km", type=float, default=0.6)
    args = parser.parse_args(argv)
    checkpoints = dict(entry.split("=", 1) for entry in (args.checkpoint or DEMO))
    missing = [p for p in checkpoints.values() if not Path(p).with_suffix(".safetensors").is_file()]
    if missing:
        print(f"closed_loop: no checkpoint {', '.join(missing)}; run `make demo` first", file=sys.stderr)
        return 1
    seed = HELD_OUT_SEEDS[0]
    track, config = generate_track(seed, 1000 * args.km), SimConfig()
    per_variant = {}
    for name, path in checkpoints.items():
        sims = drive_predictor(SteeringPredictor(path, "cpu"), [track], config, args.speed)
        per_variant[name] = merged_summary(sims)

    first = Path(next(iter(checkpoints.values()))).with_suffix(".safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ROS_DOMAIN_ID": str(claim_domain_id())}
        subprocess.run([sys.executable, "-m", "qattn_ros.ros.sim_drive", "--checkpoint", str(first), "--km",
                        str(args.node_km), "--speed", str(args.speed), "--device", "cpu", "--track-seed", str(seed),
                        "--report", tmp], env=env, check=True)  # fmt: skip
        node_run = json.loads((Path(tmp) / "results.json").read_text())["drivers"]["node"]
    summary = {
        "autonomy": {name: round(s["autonomy"], 4) for name, s in per_variant.items()},
        "interventions": {name: s["interventions"] for name, s in per_variant.items()},
        "km": {name: round(s["km"], 3) for name, s in per_variant.items()},
        "mean_abs_offset_m": {name: round(s["mean_abs_offset_m"], 4) for name, s in per_variant.items()},
        "sim_fps": round(node_run["steps_per_s"], 1),
        "variants": list(per_variant),
    }
    record("closed_loop", summary, track_seed=seed, speed=args.speed, camera="320x160 at 20 Hz",
           checkpoints=checkpoints, drives=per_variant, node_run=node_run)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
