#!/usr/bin/env python3
"""The main job: synthetic roads -> train kim_canny and binary_sign -> attention overlays + RMSE table
-> a closed-loop drive of the binary_sign model.

binary_sign is the recommended configuration (benchmarks/results/headline.json); kim_canny is the
baseline it is measured against. Writes runs/demo/attention_overlays.png (held-out frames, camera |
Kim & Canny attention | sign-bit attention), runs/demo/closed_loop.gif (camera | attention while it
drives), runs/demo/summary.md and runs/demo/summary.json. The shipped model (`sim_roads`: binary_sign trained
with the closed-loop recipe, models/) is evaluated on the same frames and drives the same road beside them.
Training runs on `--threads` CPU threads (2), so that a run gives the same numbers on any core count. `--seeds 3`
also trains seeds 1 and 2 (runs/demo/<variant>_s<k>) and puts the mean and spread over seeds beside
seed 0's numbers. The table reports how much the validation RMSE still swings between consecutive
epochs after the third (the kept model is the weight average, see docs/method.md). `--record` also
writes the summary to benchmarks/results/demo.json, which the README's demo table is generated from.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from qattn_ros.core.atomic import read_json, save_figure, write_text
from qattn_ros.core.metrics import late_swing, steering_errors
from qattn_ros.data.simlog import SimLogSource
from qattn_ros.data.splits import write_splits
from qattn_ros.explain.engine import relevance_scores
from qattn_ros.explain.overlay import overlay, to_camera
from qattn_ros.explain.saliency import saliency
from qattn_ros.fit.config import load_train_config
from qattn_ros.fit.trainer import Trainer
from qattn_ros.inference.predictor import Frames, SteeringPredictor
from qattn_ros.inference.shipped import DEFAULT
from qattn_ros.sim.drive import drive_predictor, merged_summary
from qattn_ros.sim.track import HELD_OUT_SEEDS, generate_track
from qattn_ros.sim.world import SimConfig

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"kim_canny": "Kim & Canny attention", "binary_sign": "sign-bit attention (binary_sign)"}
DRIVER = "binary_sign"  # the recommended configuration drives the closed loop
RECORD = ROOT / "benchmarks" / "results" / "demo.json"


def test_metrics(predictor: SteeringPredictor, frames: Frames) -> dict:
    """RMSE / MAE on held-out frames, and how much attention falls on the relevance mask."""
    steering, _ = predictor.predict_batch(frames.images)
    maps = saliency("attention", predictor.model, predictor.normalize(frames.images), np.arange(len(frames)))
    _, mass_ratio, _ = relevance_scores(maps, frames.masks)
    return {**steering_errors(steering, frames.targets), "mask_mass_ratio": float(np.nanmean(mass_ratio))}


def spread(values: list[float], digits: int = 4) -> str:
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}" if len(values) > 1 else "–"


def overlay_figure(predictors: dict, log: Path, out: Path, count: int = 6) -> None:
    source = SimLogSource(log)
    records = [r for _, r in zip(range(count), source)]
    fig = Figure(figsize=(4.2 * (1 + len(predictors)), 2.3 * count))
    axes = fig.subplots(count, 1 + len(predictors))
    for row, record in enumerate(records):
        axes[row, 0].imshow(record.image)
        axes[row, 0].set_title(f"held-out frame, steering {record.steering:+.3f}", fontsize=9)
        for col, (name, predictor) in enumerate(predictors.items(), start=1):
            prediction = predictor.predict(record.image)
            heat = to_camera(prediction.attention, *record.image.shape[:2], predictor.preprocessing)
            axes[row, col].imshow(overlay(record.image, heat, alpha=0.6))
            axes[row, col].set_title(f"{VARIANTS[name]}: {prediction.steering:+.3f}", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, out, dpi=80)


def closed_loop_drive(predictor: SteeringPredictor, gif: Path | None) -> dict:
    """The model steers the simulated car on a held-out road: does a low RMSE stay in its lane?"""
    track = generate_track(HELD_OUT_SEEDS[0], 1000.0)
    sims = drive_predictor(predictor, [track], SimConfig(), speed=15.0, gif=str(gif) if gif else None)
    return merged_summary(sims)


def drive_line(name: str, drive: dict) -> str:
    return (f"{name}: autonomy {100 * drive['autonomy']:.1f} %, {drive['interventions']} interventions, "
            f"mean |offset| {drive['mean_abs_offset_m']:.3f} m, max {drive['max_abs_offset_m']:.2f} m")  # fmt: skip


def cell(row: dict, column: str) -> str:
    value = row[column]
    if value is None:
        return "–"
    if column.endswith("rmse") or column == "test_mae":
        return f"{value:.4f}"
    return f"{value:.2f}" if column == "mask_mass_ratio" else f"{100 * value:.1f} %"


def plain(value: object) -> object:
    """numpy scalars (the drive's counters) as JSON numbers."""
    return value.item() if hasattr(value, "item") else str(value)


def demo_record(
    rows: list[dict], drive: dict, shipped_drive: dict, args: argparse.Namespace, wall_s: float, summary_md: str
) -> dict:
    """The run as benchmarks/results/*.json records one: machine, command, date, summary, details. summary.md's
    SHA-256 is kept so that a rerun shows whether it made the same file (it does, on the same thread count)."""
    seed0 = {r["variant"]: r for r in rows if r["seed"] == 0}
    summary = {"test_rmse": {v: round(r["test_rmse"], 5) for v, r in seed0.items()},
               "mask_mass_ratio": {v: round(r["mask_mass_ratio"], 3) for v, r in seed0.items()},
               "driver": DRIVER, "autonomy": drive["autonomy"], "interventions": drive["interventions"],
               "mean_abs_offset_m": round(drive["mean_abs_offset_m"], 3),
               "max_abs_offset_m": round(drive["max_abs_offset_m"], 3), "seeds": args.seeds, "threads": args.threads,
               "shipped_autonomy": shipped_drive["autonomy"],
               "shipped_mean_abs_offset_m": round(shipped_drive["mean_abs_offset_m"], 3),
               "wall_s": round(wall_s, 1),
               "summary_sha256": hashlib.sha256(summary_md.encode()).hexdigest()}  # fmt: skip
    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "command": " ".join(["python training/demo.py", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "summary": summary,
        "settings": {"train_frames": args.train_frames, "epochs": args.epochs, "seeds": args.seeds},
        "rows": rows,
        "drive": drive,
        "shipped_drive": shipped_drive,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--data", default="data_out/synthetic")
    parser.add_argument("--train-frames", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=4, help="4: val RMSE bottoms out there at 6,000 frames")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds; seed 0 makes the figures")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for training and inference (2)")
    parser.add_argument("--record", action="store_true", help=f"also write the summary to {RECORD.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    started = time.monotonic()
    torch.set_num_threads(args.threads)
    out, data = Path(args.out), Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    if not (data / "test" / "driving_log.csv").is_file():
        write_splits(data, {"train": args.train_frames, "val": 500, "test": 500})
    predictors, rows = {}, []
    for seed in range(args.seeds):  # seed by seed: seed 0's models (the figures) first
        for variant in VARIANTS:
            folder = out / (variant if seed == 0 else f"{variant}_s{seed}")
            config = load_train_config(
                ROOT / "config" / "train" / "synthetic.yaml",
                [f"optim.epochs={args.epochs}", f"out={folder}", f"seed={seed}",
                 f"data.train=[{{kind: simlog, path: '{data / 'train'}'}}]",
                 f"data.val=[{{kind: simlog, path: '{data / 'val'}'}}]"],
                model_path=str(ROOT / "config" / "models" / f"{variant}.yaml"),
            )  # fmt: skip
            predictor = SteeringPredictor(Trainer(config).fit(), "cpu")
            frames = predictor.frames(SimLogSource(data / "test"), config.data.cache_dir)
            metrics = test_metrics(predictor, frames)
            val = predictor.info.metrics
            history = read_json(folder / "history.json")
            rows.append({"variant": variant, "seed": seed, "val_rmse": val["rmse"], "test_rmse": metrics["rmse"],
                         "test_mae": metrics["mae"], "mean_baseline_rmse": val["mean_baseline_rmse"],
                         "mask_mass_ratio": metrics["mask_mass_ratio"],
                         "late_val_swing": late_swing(history)})  # fmt: skip
            if seed == 0:
                predictors[variant] = predictor
    shipped = SteeringPredictor(DEFAULT, "cpu")  # beside them: the shipped model, closed-loop recipe
    metrics = test_metrics(shipped, shipped.frames(SimLogSource(data / "test"), config.data.cache_dir))
    rows.append({"variant": f"{shipped.shipped.name} (shipped)", "seed": 0, "val_rmse": None,
                 "test_rmse": metrics["rmse"], "test_mae": metrics["mae"],
                 "mean_baseline_rmse": rows[0]["mean_baseline_rmse"], "mask_mass_ratio": metrics["mask_mass_ratio"],
                 "late_val_swing": None})  # fmt: skip
    overlay_figure(predictors, data / "test", out / "attention_overlays.png")
    columns = ("val_rmse", "test_rmse", "test_mae", "mean_baseline_rmse", "mask_mass_ratio", "late_val_swing")
    table = [
        "| model | val RMSE | test RMSE | test MAE | predict-the-mean RMSE | attention on relevant pixels (x area) "
        "| largest val RMSE swing after epoch 3 |",
        "|---|---|---|---|---|---|---|",
        *[f"| {r['variant']} | " + " | ".join(cell(r, c) for c in columns) + " |" for r in rows if r["seed"] == 0],
    ]  # fmt: skip
    if args.seeds > 1:
        table += ["", f"Mean ± standard deviation over {args.seeds} training seeds (seed 0 above):", "",
                  "| model | val RMSE | test RMSE | test MAE | attention on relevant pixels (x area) "
                  "| largest val RMSE swing after epoch 3 |", "|---|---|---|---|---|---|"]  # fmt: skip
        for variant in VARIANTS:
            mine = [r for r in rows if r["variant"] == variant]
            table.append(f"| {variant} | " + " | ".join(spread([r[c] for r in mine]) for c in columns[:3])
                         + f" | {spread([r['mask_mass_ratio'] for r in mine], 2)} | "
                         f"{100 * max(r['late_val_swing'] for r in mine):.1f} % (largest) |")  # fmt: skip
    drive = closed_loop_drive(predictors[DRIVER], out / "closed_loop.gif")
    shipped_drive = closed_loop_drive(shipped, None)
    table += ["", f"Closed loop: 1 km of a held-out road at 15 m/s (camera | attention of the trained {DRIVER} in "
              "closed_loop.gif):", "", drive_line(f"{DRIVER} (trained here)", drive), "",
              drive_line(f"{shipped.shipped.name} (shipped)", shipped_drive)]  # fmt: skip
    summary = "\n".join(["Steering in simulator units (x25 deg, positive right).", "", *table, ""])
    write_text(out / "summary.md", summary)
    result = demo_record(rows, drive, shipped_drive, args, time.monotonic() - started, summary)
    write_text(out / "summary.json", json.dumps(result, indent=2, default=plain) + "\n")
    if args.record:
        write_text(RECORD, json.dumps(result, indent=2, default=plain) + "\n")
        print(f"recorded {RECORD}")
    print(summary)
    print(f"overlays: {out / 'attention_overlays.png'}, closed loop: {out / 'closed_loop.gif'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
