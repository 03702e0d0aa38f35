#!/usr/bin/env python3
"""Closed-loop driving that can fail: a difficulty sweep, breaking points, and the simulator's lockstep speed.

    python -m benchmarks.closed_loop [--checkpoint NAME=PATH ...] [--tracks 5] [--track-m 250] [--jobs 2]
        [--faithfulness 'runs/headline/models/*/best' [--reuse-sweep]]

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

`--faithfulness GLOB` (e.g. the headline's seeds): those checkpoints also drive the
`--faithfulness-axes`; every checkpoint's attention is scored by deletion AUC on the same
held-out frames (relative to the kim_canny ones: the headline's deletion ratio), and the
Spearman correlation over checkpoints of that ratio with robustness (mean autonomy over the
levels of those axes) answers "does the more faithful attention drive more robustly?".
Wall and CPU time (this process and its children) are recorded.
Defaults: the `make demo` checkpoints.
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.record import RESULTS, record
from qattn_ros.core.atomic import write_json, write_text
from qattn_ros.data.simlog import SimLogSource, write_simlog
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.explain.engine import EvalSettings, evaluate_method, read_results
from qattn_ros.inference.predictor import SteeringPredictor
from qattn_ros.ros.dds_domain import claim_domain_id
from qattn_ros.sim.faithfulness import correlate
from qattn_ros.sim.sweep import AXIS_NAMES, NOMINAL_SPEED, PURSUIT, SweepResult, run_sweep
from qattn_ros.sim.sweep_report import plot_sweep, sweep_table
from qattn_ros.sim.track import HELD_OUT_SEEDS

ROOT = Path(__file__).resolve().parents[1]
DEMO = ["binary_sign=runs/demo/binary_sign/best", "kim_canny=runs/demo/kim_canny/best"]
PLOT = ROOT / "docs" / "closed_loop_sweep.png"
TABLE = ROOT / "docs" / "closed_loop_sweep.md"
CACHE = ROOT / "runs" / "closed_loop_drives"  # finished drives: an interrupted run continues where it stopped
FAITHFULNESS_FRAMES_SEED = 4242  # a generator seed no training set uses


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


def deletion_aucs(checkpoints: dict[str, str], count: int, work: Path) -> dict[str, float]:
    """Mean deletion AUC of each checkpoint's attention on the same `count` held-out frames (onto the mean, K = 50)."""
    frames_dir = work / f"frames_{count}"
    if not (frames_dir / "driving_log.csv").is_file():
        write_simlog(frames_dir, RoadGenerator(160, 320, seed=FAITHFULNESS_FRAMES_SEED), count)
    aucs = {}
    for name, path in checkpoints.items():
        predictor = SteeringPredictor(path, "cpu")
        frames = predictor.frames(SimLogSource(frames_dir), work / "cache", count)
        rows = read_results(evaluate_method(predictor, "attention", frames, work / name / "attention.jsonl",
                                            EvalSettings(steps=50, seed=0, insertion=False)))  # fmt: skip
        aucs[name] = float(np.mean([row["deletion_auc"] for row in rows]))
    return aucs


def faithfulness_study(args: argparse.Namespace, main: SweepResult, checkpoints: dict[str, str]) -> dict:
    """Deletion AUC against robustness over the demo and the headline checkpoints (`--faithfulness GLOB`)."""
    patterns = args.faithfulness.split(",")
    found = sorted({Path(p).with_suffix("") for pattern in patterns for p in glob.glob(pattern + ".safetensors")})
    extra = {f"{p.parent.name}": str(p) for p in found if str(p) not in checkpoints.values()}
    print(f"faithfulness: {len(extra)} more checkpoints matching {args.faithfulness}", file=sys.stderr)
    axes = [axis for axis in args.faithfulness_axes if axis in main.sweep]
    # a copy: the headline checkpoints join the study's sweep, not the benchmark's table, plot and summary
    result = SweepResult(copy.deepcopy({a: main.sweep[a] for a in axes}),
                         copy.deepcopy({a: main.breaking_point[a] for a in axes}),
                         main.tracks_per_level, main.track_length_m, {a: main.axes[a] for a in axes})  # fmt: skip
    if extra:
        more = run_sweep(extra, axes, args.tracks, args.track_m, args.jobs, CACHE)
        for axis in axes:
            for value, by_driver in more.sweep[axis].items():
                result.sweep[axis][value].update({k: v for k, v in by_driver.items() if k != PURSUIT})
            result.breaking_point[axis].update(more.breaking_point[axis])
    models = {**checkpoints, **extra}
    aucs = deletion_aucs(models, args.faithfulness_frames, Path(args.faithfulness_work))
    baseline = [auc for name, auc in aucs.items() if "kim_canny" in name]
    ratios = {name: auc / float(np.mean(baseline)) if baseline else auc for name, auc in aucs.items()}
    return {"pattern": args.faithfulness, "frames": args.faithfulness_frames, "checkpoints": models,
            "deletion_auc": aucs, **correlate(result, ratios)}  # fmt: skip


def add_faithfulness(args: argparse.Namespace) -> int:
    """The faithfulness study on top of the recorded sweep, written into the same result file."""
    path = RESULTS / "closed_loop.json"
    recorded = json.loads(path.read_text())
    main = SweepResult(recorded["sweep"], recorded["breaking_point"], recorded["tracks_per_level"],
                       recorded["track_length_m"], recorded["axes"])  # fmt: skip
    start_wall, start_cpu = time.monotonic(), cpu_seconds()
    study = faithfulness_study(args, main, recorded["checkpoints"])
    study["timing"] = {"wall_s": time.monotonic() - start_wall, "cpu_s": cpu_seconds() - start_cpu}
    recorded["faithfulness"] = study
    recorded["summary"]["faithfulness_rho"] = study.get("spearman_rho")
    recorded["summary"]["faithfulness_models"] = study.get("models")
    write_json(path, recorded)
    print(json.dumps({k: v for k, v in study.items() if k != "checkpoints"}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", help="NAME=PATH (default: the make demo checkpoints)")
    parser.add_argument("--tracks", type=int, default=5, help="held-out tracks per level")
    parser.add_argument("--track-m", type=float, default=250.0, help="length of each track, m")
    parser.add_argument("--axes", nargs="+", default=list(AXIS_NAMES), choices=AXIS_NAMES)
    parser.add_argument("--jobs", type=int, default=2, help="processes driving at once")
    parser.add_argument("--node-km", type=float, default=0.6, help="km of the qattn_sim lockstep run (0: skip)")
    parser.add_argument(
        "--faithfulness",
        metavar="GLOB",
        help="checkpoints without .safetensors, comma-separated globs, e.g. runs/headline/models/*/best",
    )
    parser.add_argument("--faithfulness-axes", nargs="+", default=["camera", "curvature"], choices=AXIS_NAMES)
    parser.add_argument("--faithfulness-frames", type=int, default=100, help="held-out frames for deletion AUCs")
    parser.add_argument(
        "--reuse-sweep",
        action="store_true",
        help="with --faithfulness: add the study to the recorded result instead of driving it all again",
    )
    parser.add_argument("--faithfulness-work", default="runs/closed_loop_faithfulness", help="deletion results")
    args = parser.parse_args(argv)
    checkpoints = dict(entry.split("=", 1) for entry in (args.checkpoint or DEMO))
    missing = [p for p in checkpoints.values() if not Path(p).with_suffix(".safetensors").is_file()]
    if missing:
        print(f"closed_loop: no checkpoint {', '.join(missing)}; run `make demo` first", file=sys.stderr)
        return 1
    start_wall, start_cpu = time.monotonic(), cpu_seconds()
    if args.reuse_sweep:
        return add_faithfulness(args)
    result = run_sweep(checkpoints, args.axes, args.tracks, args.track_m, args.jobs, CACHE)
    sweep_wall, sweep_cpu = time.monotonic() - start_wall, cpu_seconds() - start_cpu
    nominal = next(iter(next(iter(result.sweep.values())).values()))
    node = node_run(str(Path(next(iter(checkpoints.values()))).with_suffix(".safetensors")), args.node_km) \
        if args.node_km > 0 else None  # fmt: skip
    faithfulness = faithfulness_study(args, result, checkpoints) if args.faithfulness else None
    plot_sweep(result, PLOT)
    table = sweep_table(result)
    write_text(TABLE, "Closed-loop difficulty sweep (`python -m benchmarks.closed_loop`), written by the benchmark."
               f"\n\n{table}")  # fmt: skip
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
    if faithfulness:
        summary["faithfulness_rho"] = faithfulness.get("spearman_rho")
        summary["faithfulness_models"] = faithfulness.get("models")
    record("closed_loop", summary, sweep=result.sweep, breaking_point=result.breaking_point,
           tracks_per_level=result.tracks_per_level, track_length_m=result.track_length_m,
           track_seeds=list(HELD_OUT_SEEDS[: args.tracks]), axes=result.axes, checkpoints=checkpoints,
           camera="320x160 at 20 Hz", node_run=node, faithfulness=faithfulness,
           timing={"wall_s": wall, "cpu_s": cpu, "sweep_wall_s": sweep_wall, "sweep_cpu_s": sweep_cpu,
                   "jobs": args.jobs, "cached_drives": result.cached, "load_at_end": os.getloadavg()})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
