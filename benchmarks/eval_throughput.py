#!/usr/bin/env python3
"""Deletion evaluation speed: the batched engine vs a plain per-frame, per-step loop.

Frames/s = frames whose full deletion curve (K + 1 = 51 forwards each) is computed per
second, attention saliency included. Same model, frames and maps for both.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

from qattn_ros.explain.perturbation import curves, curves_loop, default_batch_size  # noqa: E402
from qattn_ros.explain.saliency import saliency  # noqa: E402
from qattn_ros.model import ModelConfig, SteeringNet  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=64, help="frames for the batched engine")
    parser.add_argument("--loop-frames", type=int, default=8, help="frames for the per-step loop")
    parser.add_argument("--batch-size", type=int, help="default: 64 on CPU, 1024 on GPU (the engine's default)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="quant_sign")).to(device).eval()
    model.to(memory_format=torch.channels_last)  # as the evaluation engine runs it
    model.calibrate(torch.randn(16, 3, 80, 160, device=device))
    predict = lambda x: model(x).steering  # noqa: E731
    x = torch.randn(args.frames, 3, 80, 160, device=device)
    ids = np.arange(args.frames)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    curves(predict, x[:4], saliency("attention", model, x[:4], ids[:4]), ids[:4], total_steps=args.steps)  # warm-up
    sync()
    start = time.perf_counter()
    maps = saliency("attention", model, x, ids)
    batched = curves(predict, x, maps, ids, total_steps=args.steps, batch_size=args.batch_size)
    sync()
    batched_fps = args.frames / (time.perf_counter() - start)

    n = args.loop_frames
    start = time.perf_counter()
    loop = curves_loop(predict, x[:n], saliency("attention", model, x[:n], ids[:n]), ids[:n], total_steps=args.steps)
    sync()
    loop_fps = n / (time.perf_counter() - start)
    assert np.allclose(batched[:n], loop, atol=1e-5), "batched and loop curves must agree"
    summary = {
        "batched_fps": round(batched_fps, 2),
        "loop_fps": round(loop_fps, 2),
        "batched_vs_loop": round(batched_fps / loop_fps, 2),
    }
    batch_size = args.batch_size or default_batch_size(device)
    record("eval_throughput", summary, steps=args.steps, batch_size=batch_size, frames=args.frames, loop_frames=n,
           device=str(device), threads=torch.get_num_threads())  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
