#!/usr/bin/env python3
"""The paper's claim on real camera frames: the Udacity Challenge 2 evaluation drive, or any recording.

    python training/assemble_udacity.py --frames deepxplore --labels self-driving-car   # once: data/udacity
    python -m benchmarks.udacity_ch2 --jobs 2                  # 3 seeds x 3 models; resumes where it stopped
    python -m benchmarks.udacity_ch2 --data my_drive --name my_drive   # any source the readers know

The drive is cut into contiguous time blocks (train, val, test; --blocks, with --gap-s between blocks, so
neighbouring frames cannot leak). kim_canny, binary_sign and quant_sign (b = 2, rest dropout 0.5) train on
the train block (--seeds seeds each, config/train/udacity.yaml: crop sky and hood, YUV, 80x160, flip and
brightness augmentation) and are explained on --test-frames evenly spaced frames of the test block: the
attention and the random order under deletion onto the mean, ROAD most- and least-relevant-first,
insertion, and the sanity check. Cross-model figures are normalized by each model's own floor (deletion
over its random order, ROAD MoRF over LeRF) beside the raw ratios (benchmarks/cross_model.py).

Writes <out>/<name>.json and .md, the deletion curves and real frames with both attentions
(docs/<name>_*.png with --record), and with --record benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.cross_model import summarize
from benchmarks.headline import MAIN, add_run_arguments, evaluate_frames
from benchmarks.record import record
from benchmarks.udacity_ch2_report import markdown_table, plot_attention, plot_curves
from qattn_ros.core.atomic import file_sha256, write_json, write_text
from qattn_ros.data.cache import build_cache
from qattn_ros.data.sources import open_source, spec_from_text
from qattn_ros.data.time_blocks import TimeBlocks, describe_blocks, smallest_gap_s, split_rows
from qattn_ros.data.udacity_ch2 import MANIFEST
from qattn_ros.fit.config import TrainConfig, load_train_config
from qattn_ros.fit.trainer import Trainer
from qattn_ros.inference.predictor import SteeringPredictor

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = "binary_sign"


def time_blocks(args: argparse.Namespace) -> TimeBlocks:
    return TimeBlocks(*args.blocks, args.gap_s, tuple(args.order.split(",")))


def train_config(name: str, seed: int, args: argparse.Namespace) -> TrainConfig:
    blocks = time_blocks(args).as_dict()
    return load_train_config(ROOT / "config" / "train" / "udacity.yaml", [
        *MAIN[name], f"seed={seed}", f"out={Path(args.out) / 'models' / f'{name}_s{seed}'}",
        f"optim.epochs={args.epochs}", f"device={args.device}", f"optim.batch_size={args.batch}",
        f"data.train=[{json.dumps(args.spec)}]", "data.val=[]", f"data.blocks={json.dumps(blocks)}",
        f"data.cache_dir={Path(args.out) / 'cache'}", f"progress={args.jobs == 1}",
    ], model_path=str(ROOT / "config" / "models" / "quant_sign.yaml"))  # fmt: skip


def run_pair(name: str, seed: int, args: argparse.Namespace) -> dict:
    """Train (or reuse) one model on the train block and explain it on the test block."""
    if args.jobs > 1 and torch.device(args.device).type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.jobs))
    config = train_config(name, seed, args)
    out = Path(config.out)
    if not (out / "history.json").is_file():
        Trainer(config).fit()
    predictor = SteeringPredictor(out / "best", args.device)
    frames = predictor.frames(open_source(args.spec), config.data.cache_dir, args.test_frames or None,
                              block="test", blocks=config.data.blocks)  # fmt: skip
    result = evaluate_frames(predictor, frames, ("attention", "random"), True, args)
    history = json.loads((out / "history.json").read_text())
    result["train_s"] = float(sum(epoch["seconds"] for epoch in history))
    return result


def splits(args: argparse.Namespace) -> tuple[dict, np.ndarray]:
    """The blocks' frame counts, spans, steering variance and constant-prediction RMSEs, and the smallest gap;
    and the stamps of the source's frames."""
    config = train_config(HEADLINE, 0, args)
    cached = build_cache(open_source(args.spec), config.preprocessing, config.data.cache_dir)
    rows = split_rows(cached.stamps, config.data.blocks)
    described = {
        "blocks": config.data.blocks.as_dict(),
        "unit": cached.steering_unit,
        "per_block": describe_blocks(cached.stamps, cached.steering, rows),
        "smallest_gap_s": round(smallest_gap_s(cached.stamps, rows), 3),
        "source_frames": len(cached),
    }
    return described, cached.stamps


def headline_summary(table: dict, split: dict, args: argparse.Namespace) -> dict:
    head, base = table[HEADLINE], table["kim_canny"]
    att = head["methods"]["attention"]

    def ratio(key: str) -> dict:
        return {"ratio": round(att[key]["vs_kim_canny"], 3), "ci": [round(x, 3) for x in att[key]["vs_kim_canny_ci"]]}

    return {
        "deletion_over_random_ratio": ratio("deletion_over_random"),
        "road_morf_over_lerf_ratio": ratio("road_morf_over_lerf"),
        "deletion_auc_ratio": ratio("deletion_auc"),
        "road_ratio": ratio("road_morf_auc"),
        "rmse_ratio": round(head["rmse_ratio"], 3),
        "rmse": {name: round(entry["rmse_mean"], 4) for name, entry in table.items()},
        "test_mean_rmse": round(split["per_block"]["test"]["train_mean_rmse"], 4),
        "sanity_rho": round(att["sanity_rho"], 3),
        "kim_canny_sanity_rho": round(base["methods"]["attention"]["sanity_rho"], 3),
        "seeds": head["seeds"],
        "test_frames": args.test_frames,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/udacity", help="a path or a mapping {kind: ...} (data/sources.py)")
    parser.add_argument("--name", default="udacity_ch2", help="names the results")
    parser.add_argument("--out", help="default: runs/<name>")
    parser.add_argument("--models", default="kim_canny,binary_sign,quant_sign_b2_p0.5",
                        help=f"from {', '.join(MAIN)}; kim_canny is the baseline")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--blocks", type=float, nargs=3, default=(0.7, 0.1, 0.2), metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--gap-s", type=float, default=2.0, help="seconds between blocks")
    parser.add_argument("--order", default="test,val,train",
                        help="the blocks in time order (HMB_3 ends on a straight highway: test first)")  # fmt: skip
    parser.add_argument("--test-frames", type=int, default=300, help="evenly spaced test-block frames (0: all)")
    add_run_arguments(parser)
    parser.add_argument("--jobs", type=int, default=1, help="models trained and evaluated at once")
    parser.add_argument("--record", action="store_true", help="write benchmarks/results/<name>.json and docs/ figures")
    args = parser.parse_args()
    args.out = args.out or f"runs/{args.name}"
    args.spec = spec_from_text(args.data)
    started = time.perf_counter()
    time_blocks(args)  # refuses bad shares or order before anything runs
    split, stamps = splits(args)
    names = [n.strip() for n in args.models.split(",")]
    pairs = [(name, seed) for seed in range(args.seeds) for name in names]
    results: dict[str, dict[int, dict]] = {}
    if args.jobs == 1:
        for name, seed in tqdm(pairs, desc="models", unit="model"):
            results.setdefault(name, {})[seed] = run_pair(name, seed, args)
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            jobs = {pool.submit(run_pair, name, seed, args): (name, seed) for name, seed in pairs}
            for job in tqdm(as_completed(jobs), total=len(jobs), desc="models", unit="model"):
                name, seed = jobs[job]
                results.setdefault(name, {})[seed] = job.result()
    runs = {name: [results[name][s] for s in sorted(results[name])] for name in names}
    table = summarize(runs)
    out = Path(args.out)
    figures = (ROOT / "docs") if args.record else out
    plot_curves(out, names, range(args.seeds), figures / f"{args.name}_curves.png")
    attention_figure = figures / f"{args.name}_attention.jpg"
    plot_attention(out, names, args.spec, time_blocks(args), stamps, attention_figure)
    manifest = Path(args.spec.get("labels", "")).parent / MANIFEST if isinstance(args.spec, dict) else None
    details = {
        "data": args.spec, "splits": split, "variants": table,
        "manifest_sha256": file_sha256(manifest) if manifest and manifest.is_file() else None,
        "settings": {k: getattr(args, k) for k in ("seeds", "epochs", "test_frames", "road_steps", "sanity_frames",
                                                   "batch", "jobs", "models")},
        "train_s": {name: [round(r["train_s"], 1) for r in rs] for name, rs in runs.items()},
        "wall_s": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    summary = headline_summary(table, split, args)
    write_json(out / f"{args.name}.json", {"summary": summary, **details})
    write_text(out / f"{args.name}.md", markdown_table(table, split))
    if args.record:
        record(args.name, summary, **details)
    print(markdown_table(table, split))
    return 0


if __name__ == "__main__":
    sys.exit(main())
