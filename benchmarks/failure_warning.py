#!/usr/bin/env python3
"""Attention that warns? AUROC and lead time of failure-warning signals on the sweep's failing levels.

    python -m benchmarks.failure_warning [--checkpoint NAME=PATH ...] [--tracks 2] [--track-m 150]

Each checkpoint drives the sweep's held-out roads at levels where learned drivers fail (camera 4,
curvature 1/18, gust 0.75, steering delay 0.4 s, appearance 6); per frame the signals of
`qattn_ros.sim.warning` (three from the attention, three that need no explanation). Positive frames:
an intervention follows within 0.5-2 s. Per signal: AUROC pooled over drivers and levels with a
bootstrap interval over drives, and the median lead time at a 5 % false-alarm threshold. Default
checkpoints: the DAgger + augmentation models of `python -m benchmarks.closed_loop_training --mode small`.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from tqdm import tqdm

from benchmarks.record import record
from qattn_ros.inference.predictor import SteeringPredictor
from qattn_ros.sim.sweep import AXES, tracks_for
from qattn_ros.sim.warning import ATTENTION_SIGNALS, drive_with_signals, evaluate_signals

FAILING = {"camera": 4, "curvature": 1 / 18, "gust": 0.75, "steering_delay": 0.4, "appearance": 6}
SMALL = "runs/closed_loop_training_small/models/closed_loop_{}_s0/best"


def failing_levels() -> dict:
    return {axis.name: next(lv for lv in axis.levels if abs(lv.value - FAILING[axis.name]) < 1e-9)
            for axis in AXES if axis.name in FAILING}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", help="NAME=PATH (default: the small-mode DAgger models)")
    parser.add_argument("--tracks", type=int, default=2)
    parser.add_argument("--track-m", type=float, default=150.0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    entries = args.checkpoint or [f"{v}={SMALL.format(v)}" for v in ("kim_canny", "quant_sign", "binary_sign")]
    checkpoints = dict(entry.split("=", 1) for entry in entries)
    start = time.monotonic()
    logs, per_model = [], {}
    drives = [(name, axis, level) for name in checkpoints for axis, level in failing_levels().items()]
    for name, _axis, level in tqdm(drives, desc="drives", unit="level"):
        predictor = SteeringPredictor(checkpoints[name], "cpu")
        for track in tracks_for(level, args.tracks, args.track_m):
            log = drive_with_signals(predictor, track, level.sim_config(), level.speed)
            logs.append(log)
            per_model.setdefault(name, []).append(log)
    pooled = evaluate_signals(logs)
    models = {name: evaluate_signals(mine, draws=300) for name, mine in per_model.items()}
    signals = pooled["signals"]
    best = {kind: max((n for n in signals if (n in ATTENTION_SIGNALS) == is_att), key=lambda n: signals[n]["auroc"])
            for kind, is_att in (("attention", True), ("other", False))}  # fmt: skip
    att, other = signals[best["attention"]], signals[best["other"]]
    summary = {
        "auroc": {n: round(s["auroc"], 3) for n, s in signals.items()},
        "auroc_ci": {n: [round(c, 3) for c in s["auroc_ci"]] for n, s in signals.items()},
        "median_lead_s": {n: round(s["median_lead_s"], 2) for n, s in signals.items()},
        "best_attention_signal": best["attention"], "best_other_signal": best["other"],
        "attention_wins": bool(att["auroc_ci"][0] > other["auroc_ci"][1]),
        "frames": pooled["frames"], "positives": pooled["positives"], "interventions": pooled["interventions"],
        "wall_s": round(time.monotonic() - start, 1),
    }  # fmt: skip
    record("failure_warning", summary, signals=signals, per_model=models, checkpoints=checkpoints,
           levels={a: lv.value for a, lv in failing_levels().items()}, tracks=args.tracks, track_m=args.track_m,
           horizon_s=[0.5, 2.0], drives=len(logs))  # fmt: skip
    for name, s in signals.items():
        print(f"{name:20s} AUROC {s['auroc']:.3f} [{s['auroc_ci'][0]:.3f}, {s['auroc_ci'][1]:.3f}] "
              f"lead {s['median_lead_s']:.2f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
