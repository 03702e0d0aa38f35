#!/usr/bin/env python3
"""Closed-loop driving that can fail: a difficulty sweep, breaking points, and the simulator's lockstep speed.

    python -m benchmarks.closed_loop [--checkpoint NAME=PATH ...] [--tracks 5] [--track-m 250] [--jobs 2]
        [--faithfulness 'runs/headline/models/*/best']

Every driver — the pure-pursuit controller on the ground truth (the reference) and each
checkpoint — drives the same `--tracks` held-out roads at every level of six axes, from the
nominal world (15 m/s, 0.1 s delay, as trained) to beyond what any driver survives: speed,
steering delay, lateral gusts with an off-centre start, camera noise and photometric shift,
road curvature beyond training, an unseen appearance (`qattn_ros.sim.sweep.AXES`). Per driver
and level: autonomy (NVIDIA's, 1 - interventions x 6 s / elapsed), interventions per km, mean
and 95th-percentile |offset|, steering jerk, each with its sd over tracks; per axis the
breaking point (first level with autonomy < 99 %). Headless (`qattn_ros.sim`, no ROS), the
drives spread over `--jobs` processes. The summary's `autonomy`, `interventions`, `km`,
`mean_abs_offset_m` are the nominal level. `sim_fps`: lockstep steps per second of `qattn_sim`
(simulator and steering node as two processes over Fast DDS) on `--node-km` of road.

`--faithfulness GLOB`: every checkpoint matching it that has a headline evaluation beside it
(eval/attention.jsonl, eval/random.jsonl) also drives the sweep's `--faithfulness-axes`; the
Spearman correlation over those checkpoints of faithfulness (deletion AUC / random-order AUC)
with robustness (mean autonomy over the levels) answers "does the more faithful attention
drive more robustly?". Wall and CPU time (this process and its children) are recorded.
Defaults: the `make demo` checkpoints.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.record import record
from qattn_ros.explain.engine import read_results
from qattn_ros.ros.dds_domain import claim_domain_id
from qattn_ros.sim.faithfulness import correlate
from qattn_ros.sim.sweep import AXIS_NAMES, NOMINAL_SPEED, run_sweep
from qattn_ros.sim.sweep_report import plot_sweep, sweep_table
from qattn_ros.sim.track import HELD_OUT_SEEDS

ROOT = Path(__file__).resolve().parents[1]
DEMO = ["quant_sign=runs/demo/quant_sign/best", "kim_canny=runs/demo/kim_canny/best"]
PLOT = ROOT / "docs" / "closed_loop_sweep.png"
TABLE = ROOT / "docs" / "closed_loop_sweep.md"


def cpu_seconds() -> float:
    """User + system CPU time of this process and every child it has waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def node_run(checkpoint: str, km: float) -> dict:
    """qattn_sim in lockstep with the node in the loop: its report's figures."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ROS_DOMAIN_ID": str(claim_domain_id())}
        subprocess.run([sys.executable, "-m", "qattn_ros.ros.sim_drive", "--checkpoint", checkpoint, "--km", str(km),
                        "--speed", str(NOMINAL_SPEED), "--device", "cpu", "--track-seed", str(HELD_OUT_SEEDS[0]),
                        "--report", tmp], env=env, check=True)  # fmt: skip
        return json.loads((Path(tmp) / "results.json").read_text())["drivers"]["node"]


def deletion_ratio(checkpoint: Path) -> float | None:
    """Faithfulness of a headline checkpoint: mean deletion AUC of its attention over that of random order."""
    folder = checkpoint.parent / "eval"
    if not ((folder / "attention.jsonl").is_file() and (folder / "random.jsonl").is_file()):
        return None
    auc = {m: [r["deletion_auc"] for r in read_results(folder / f"{m}.jsonl")] for m in ("attention", "random")}
    return float(sum(auc["attention"]) / len(auc["attention"]) / (sum(auc["random"]) / len(auc["random"])))


def faithfulness_study(pattern: str, args: argparse.Namespace) -> dict:
    found = sorted(Path(p).with_suffix("") for p in glob.glob(pattern + ".safetensors"))
    ratios = {str(p): deletion_ratio(p) for p in found}
    models = {str(p.parent.name): str(p) for p in found if ratios[str(p)] is not None}
    print(f"faithfulness: {len(models)} evaluated checkpoints of {len(found)} matching {pattern}", file=sys.stderr)
    if len(models) < 2:
        return {"pattern": pattern, "models": len(models), "note": "fewer than 2 evaluated checkpoints"}
    result = run_sweep(models, args.faithfulness_axes, args.tracks, args.track_m, args.jobs)
    return {"pattern": pattern, **correlate(result, {name: ratios[path] for name, path in models.items()})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", help="NAME=PATH (default: the make demo checkpoints)")
    parser.add_argument("--tracks", type=int, default=5, help="held-out tracks per level")
    parser.add_argument("--track-m", type=float, default=250.0, help="length of each track, m")
    parser.add_argument("--axes", nargs="+", default=list(AXIS_NAMES), choices=AXIS_NAMES)
    parser.add_argument("--jobs", type=int, default=2, help="processes driving at once")
    parser.add_argument("--node-km", type=float, default=0.6, help="km of the qattn_sim lockstep run (0: skip)")
    parser.add_argument("--faithfulness", metavar="GLOB", help="headline checkpoints, e.g. runs/headline/models/*/best")
    parser.add_argument("--faithfulness-axes", nargs="+", default=["camera", "appearance"], choices=AXIS_NAMES)
    args = parser.parse_args(argv)
    checkpoints = dict(entry.split("=", 1) for entry in (args.checkpoint or DEMO))
    missing = [p for p in checkpoints.values() if not Path(p).with_suffix(".safetensors").is_file()]
    if missing:
        print(f"closed_loop: no checkpoint {', '.join(missing)}; run `make demo` first", file=sys.stderr)
        return 1
    start_wall, start_cpu = time.monotonic(), cpu_seconds()
    result = run_sweep(checkpoints, args.axes, args.tracks, args.track_m, args.jobs)
    sweep_wall, sweep_cpu = time.monotonic() - start_wall, cpu_seconds() - start_cpu
    nominal = next(iter(next(iter(result.sweep.values())).values()))
    node = node_run(str(Path(next(iter(checkpoints.values()))).with_suffix(".safetensors")), args.node_km) \
        if args.node_km > 0 else None  # fmt: skip
    faithfulness = faithfulness_study(args.faithfulness, args) if args.faithfulness else None
    plot_sweep(result, PLOT)
    table = sweep_table(result)
    TABLE.write_text(f"Closed-loop difficulty sweep (`python -m benchmarks.closed_loop`), written by the benchmark.\n\n"
                     f"{table}")  # fmt: skip
    print(table)
    wall, cpu = time.monotonic() - start_wall, cpu_seconds() - start_cpu
    models = list(checkpoints)
    summary = {
        "autonomy": {name: round(nominal[name]["autonomy"], 4) for name in models},
        "interventions": {name: nominal[name]["interventions"] for name in models},
        "km": {name: round(nominal[name]["km"], 3) for name in models},
        "mean_abs_offset_m": {name: round(nominal[name]["mean_abs_offset_m"], 4) for name in models},
        "sim_fps": round(node["steps_per_s"], 1) if node else None,
        "variants": models,
        "breaking_point": result.breaking_point,
        "tracks_per_level": result.tracks_per_level,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
    }
    record("closed_loop", summary, sweep=result.sweep, breaking_point=result.breaking_point,
           tracks_per_level=result.tracks_per_level, track_length_m=result.track_length_m,
           track_seeds=list(HELD_OUT_SEEDS[: args.tracks]), axes=result.axes, checkpoints=checkpoints,
           camera="320x160 at 20 Hz", node_run=node, faithfulness=faithfulness,
           timing={"wall_s": wall, "cpu_s": cpu, "sweep_wall_s": sweep_wall, "sweep_cpu_s": sweep_cpu,
                   "jobs": args.jobs, "load_at_end": os.getloadavg()})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
