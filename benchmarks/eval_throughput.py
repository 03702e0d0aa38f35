#!/usr/bin/env python3
"""Deletion evaluation speed: the batched engine vs a plain per-frame, per-step loop.

    python -m benchmarks.eval_throughput [--device cuda --frames 4096 --loop-frames 32]

Frames/s = frames whose full deletion curve (K + 1 = 51 forwards each) is computed per
second, attention saliency included. Same model, frames and maps for both (maps computed
once: recomputing them at another batch size reorders near-tied pixels on a GPU). On a GPU
the curves are also recomputed on the CPU from the same maps, and the largest difference
is recorded: how closely GPU results match the CPU reference.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.record import record
from qattn_ros.core.preprocess import Preprocessing
from qattn_ros.explain.perturbation import auc, curves, curves_loop, default_batch_size
from qattn_ros.explain.saliency import saliency
from qattn_ros.inference.predictor import SteeringPredictor, exact_float32
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint


def random_checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="quant_sign")).eval()
    model.calibrate(torch.randn(16, 3, 80, 160))
    info = CheckpointInfo(model.config, Preprocessing(), "wheel_rad", True)
    return save_checkpoint(folder / "quant_sign", model, info)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=64, help="frames for the batched engine")
    parser.add_argument("--loop-frames", type=int, default=8, help="frames for the per-step loop")
    parser.add_argument("--batch-size", type=int, help="default: 64 on CPU, 1024 on GPU (the engine's default)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = random_checkpoint(Path(folder))
        predictor = SteeringPredictor(checkpoint, args.device)
        reference = SteeringPredictor(checkpoint, "cpu") if predictor.device.type != "cpu" else None
    device = predictor.device
    predictor.model.to(memory_format=torch.channels_last)  # as the evaluation engine runs it
    predict = predictor.steering
    x = torch.randn(args.frames, 3, 80, 160, generator=torch.Generator().manual_seed(1)).to(device)
    ids = np.arange(args.frames)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    with exact_float32():
        curves(predict, x[:4], saliency("attention", predictor.model, x[:4], ids[:4]), ids[:4], total_steps=args.steps)
        sync()  # warmed up
        start = time.perf_counter()
        maps = saliency("attention", predictor.model, x, ids)
        batched = curves(predict, x, maps, ids, total_steps=args.steps, batch_size=args.batch_size).cpu().numpy()
        sync()
        batched_fps = args.frames / (time.perf_counter() - start)

        n = args.loop_frames
        start = time.perf_counter()
        curves_loop(predict, x[:n], saliency("attention", predictor.model, x[:n], ids[:n]), ids[:n],
                           total_steps=args.steps)  # fmt: skip
        sync()
        loop_fps = n / (time.perf_counter() - start)
        same_maps = curves_loop(predict, x[:n], maps[:n], ids[:n], total_steps=args.steps).cpu().numpy()
    batch_vs_loop = float(np.abs(batched[:n] - same_maps).max())
    assert batch_vs_loop < 1e-5, f"batched and loop curves on the same maps differ by {batch_vs_loop:.2e}"
    summary = {
        "batched_fps": round(batched_fps, 2),
        "loop_fps": round(loop_fps, 2),
        "batched_vs_loop": round(batched_fps / loop_fps, 2),
    }
    details = {"max_abs_diff_batched_vs_loop": batch_vs_loop, "curve_scale": float(np.abs(batched).mean())}
    if reference is not None:  # the CPU reference on the same frames and maps
        cpu = reference.steering
        on_cpu = curves(cpu, x[:n].cpu(), maps[:n].cpu(), ids[:n], total_steps=args.steps).numpy()
        details["max_abs_diff_vs_cpu"] = float(np.abs(batched[:n] - on_cpu).max())
        details["mean_auc_rel_diff_vs_cpu"] = float(abs(auc(batched[:n]).mean() / auc(on_cpu).mean() - 1))
    batch_size = args.batch_size or default_batch_size(device)
    record("eval_throughput", summary, steps=args.steps, batch_size=batch_size, frames=args.frames, loop_frames=n,
           device=str(device), threads=torch.get_num_threads(), **details)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
