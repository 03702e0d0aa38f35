#!/usr/bin/env python3
"""Training throughput per variant from the preprocessed cache, and the share of data loading.

Times the real Trainer: each step's data part (gather from the memory-mapped cache,
augment, normalize) and the whole step (data + forward + backward + optimizer).
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
from qattn_ros.data.simlog import write_simlog
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.fit.config import load_train_config
from qattn_ros.fit.trainer import Trainer
from qattn_ros.model import VARIANTS


def measure(trainer: Trainer, steps: int) -> dict:
    model = trainer.model.train()
    generator = torch.Generator().manual_seed(0)
    batches = trainer._step_batches(0)
    data_s = step_s = 0.0
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    for index in range(steps + 2):
        (micro,) = next(batches)
        start = time.perf_counter()
        x, y = trainer._inputs(micro, augment_batch=True, generator=generator)
        sync()
        loaded = time.perf_counter()
        out = model(x)
        loss = torch.nn.functional.mse_loss(out.steering, y)
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
        sync()
        if index >= 2:  # warm-up steps excluded
            data_s += loaded - start
            step_s += time.perf_counter() - start
    batch = trainer.config.optim.batch_size
    return {"images_per_s": steps * batch / step_s, "data_share": data_s / step_s, "step_ms": 1000 * step_s / steps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log"
        write_simlog(log, RoadGenerator(160, 320, seed=0), args.frames)
        per_variant = {}
        for variant in VARIANTS:
            config = load_train_config(None, [
                f"model.variant={variant}", f"data.train=[{{kind: simlog, path: '{log}'}}]",
                f"data.cache_dir='{tmp}/cache'", f"out='{tmp}/run'", f"optim.batch_size={args.batch}",
                "progress=false", f"device={args.device}", "augment.shift_px=4",
            ])  # fmt: skip
            per_variant[variant] = measure(Trainer(config), args.steps)
            print(variant, per_variant[variant])
    summary = {
        "images_per_s": {v: round(m["images_per_s"], 1) for v, m in per_variant.items()},
        "data_share": round(float(np.mean([m["data_share"] for m in per_variant.values()])), 4),
    }
    record("train_throughput", summary, batch_size=args.batch, steps=args.steps, per_variant=per_variant,
           threads=torch.get_num_threads())  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
