#!/usr/bin/env python3
"""The real-data pipeline end to end on a Udacity-shaped synthetic set, with timings.

640x480 frames written as an HMB-style ROS 1 bag (training) and a Challenge 2 test
layout (validation) -> cache -> DDP training under torchrun (gloo on CPU, NCCL on GPUs)
with config/train/udacity.yaml -> checkpoint -> validation RMSE. On a GPU run it with
--frames 30000 (Udacity size); the default is sized for 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.record import record
from qattn_ros.data.bags import udacity_bag
from qattn_ros.data.cache import build_cache
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.data.writers import write_ch2_test, write_udacity_bag
from qattn_ros.fit.config import load_train_config

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--val-frames", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--nproc", type=int, default=max(torch.cuda.device_count(), 2))
    parser.add_argument("--out", default="runs/udacity_pipeline")
    args = parser.parse_args()
    out = Path(args.out)
    data = out / "data"
    timings = {}

    start = time.perf_counter()
    bag = data / "HMB_1.bag"
    if not bag.is_file():
        write_udacity_bag(bag, RoadGenerator(480, 640, seed=101), args.frames, compression="lz4")
        write_ch2_test(data / "ch2", RoadGenerator(480, 640, seed=102), args.val_frames)
    timings["write_s"] = time.perf_counter() - start

    labels, images = data / "ch2" / "CH2_final_evaluation.csv", data / "ch2" / "center"
    overrides = [
        f"data.train=[{{kind: udacity_bag, paths: ['{bag}']}}]",
        f"data.val=[{{kind: ch2_test, labels: '{labels}', images: '{images}'}}]",
        f"data.cache_dir={data / 'cache'}", f"out={out / 'model'}", f"optim.epochs={args.epochs}",
    ]  # fmt: skip
    config = load_train_config(ROOT / "config" / "train" / "udacity.yaml", overrides)
    start = time.perf_counter()
    build_cache(udacity_bag(str(bag)), config.preprocessing, config.data.cache_dir)
    timings["cache_s"] = time.perf_counter() - start

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc),
               str(ROOT / "training" / "train.py"), str(ROOT / "config" / "train" / "udacity.yaml")]  # fmt: skip
    for assignment in overrides:
        command += ["--set", assignment]
    start = time.perf_counter()
    result = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": str(max(1, os.cpu_count() // args.nproc))})
    timings["train_s"] = time.perf_counter() - start
    if result.returncode != 0:
        print("training failed", file=sys.stderr)
        return 1
    best = json.loads((out / "model" / "best.json").read_text())
    history = best["training"]["history"]
    summary = {
        "frames": args.frames,
        "write_s": round(timings["write_s"], 1),
        "cache_s": round(timings["cache_s"], 1),
        "train_s": round(timings["train_s"], 1),
        "epoch_s": round(sum(h["seconds"] for h in history) / len(history), 1),
        "val_rmse": round(best["metrics"]["rmse"], 4),
        "mean_baseline_rmse": round(best["metrics"]["mean_baseline_rmse"], 4),
        "ranks": args.nproc,
    }
    record("udacity_pipeline", summary, unit=best["steering_unit"], history=history)
    return 0


if __name__ == "__main__":
    sys.exit(main())
