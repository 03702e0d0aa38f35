#!/usr/bin/env python3
"""The headline experiment and the Pareto front: faithfulness of each variant's attention vs
Kim & Canny's under two deletion protocols, against steering RMSE, over training seeds.

    python -m benchmarks.headline --jobs 2                         # CPU configuration, resumes where it stopped
    python -m benchmarks.headline --train-frames 20000 --epochs 15 --test-frames 1000 --seeds 5 \
        --grid-seeds 5 --jobs 10                                   # full size; one GPU trains ten at once

Headline variants (--seeds seeds each): kim_canny, binary_sign and quant_sign b=2 with rest
dropout 0.5; their attention and the random order are evaluated on held-out frames rendered
with a generator seed never used for training, and VisualBackProp, Grad-CAM and Integrated
Gradients explain the kim_canny models on the same frames. Per map: deletion onto the dataset
mean, ROAD most- and least-relevant-first (noisy linear imputation), insertion, the sanity check
(cascading randomization) and the uniform-attention shift (see docs/evaluation.md).
The Pareto grid, bits {1, 2, 3, 4} x rest dropout {0, 0.25, 0.5, 0.75} (b = 1 is binary_sign,
which has no rest), trains --grid-seeds seeds per point and evaluates the attention only.
Finished models and evaluations are reused, so an interrupted run continues where it stopped;
`--summarize` writes the result from what is finished. `--jobs N` runs N models at once.

Intervals: a hierarchical bootstrap (resample seeds, then frames within each seed) of the
ratio of mean AUCs, so seed-to-seed spread is part of the interval.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.cross_model import MEASURES, summarize
from benchmarks.headline_report import markdown_table, plot_curves, plot_pareto
from benchmarks.record import record
from qattn_ros.core.atomic import write_json, write_text
from qattn_ros.core.metrics import steering_errors
from qattn_ros.data.cache import build_cache
from qattn_ros.data.simlog import SimLogSource
from qattn_ros.data.splits import write_splits
from qattn_ros.explain.engine import EvalSettings, evaluate_method, read_results, sanity_method
from qattn_ros.explain.report import read_sanity, read_sanity_uniform
from qattn_ros.fit.config import TrainConfig, load_train_config
from qattn_ros.fit.trainer import Trainer
from qattn_ros.inference.predictor import Frames, SteeringPredictor

ROOT = Path(__file__).resolve().parents[1]
BITS, DROPOUTS = (1, 2, 3, 4), (0.0, 0.25, 0.5, 0.75)
POSTHOC = ("visual_backprop", "gradcam", "integrated_gradients")  # on the kim_canny models


def point_name(bits: int, dropout: float) -> str:
    return "binary_sign" if bits == 1 else f"quant_sign_b{bits}_p{dropout:g}"


def point_overrides(bits: int, dropout: float) -> list[str]:
    if bits == 1:
        return ["model.variant=binary_sign"]
    return ["model.variant=quant_sign", f"model.bits={bits}", f"model.rest_dropout={dropout}"]


MAIN = {"kim_canny": ["model.variant=kim_canny"], "binary_sign": point_overrides(1, 0.0),
        "quant_sign_b2_p0.5": point_overrides(2, 0.5)}  # fmt: skip
GRID = {point_name(b, p): point_overrides(b, p) for b in BITS for p in (DROPOUTS if b > 1 else (0.0,))}
HEADLINE = "binary_sign"  # the best reading of the method at the last full-size run (see README)


def train_config(name: str, seed: int, overrides: list[str], args: argparse.Namespace, data: Path) -> TrainConfig:
    out = Path(args.out) / "models" / f"{name}_s{seed}"
    return load_train_config(ROOT / "config" / "train" / "synthetic.yaml", [
        *overrides, f"seed={seed}", f"out={out}", f"optim.epochs={args.epochs}", f"device={args.device}",
        f"data.train=[{{kind: simlog, path: '{data / 'train'}'}}]",
        f"data.val=[{{kind: simlog, path: '{data / 'val'}'}}]", f"data.cache_dir={data / 'cache'}",
        f"optim.batch_size={args.batch}", f"progress={args.jobs == 1}",
    ], model_path=str(ROOT / "config" / "models" / "quant_sign.yaml"))  # fmt: skip


def train(config: TrainConfig) -> Path:
    out = Path(config.out)
    if (out / "history.json").is_file():
        return out / "best"
    Trainer(config).fit()
    return out / "best"


def evaluate(name: str, methods: tuple[str, ...], checkpoint: Path, args: argparse.Namespace, data: Path) -> dict:
    """{method: {measure: per-frame array}, "rmse", "uniform_shift"} of one trained model on the test roads."""
    predictor = SteeringPredictor(checkpoint, args.device)
    frames = predictor.frames(SimLogSource(data / "test"), data / "cache", args.test_frames)
    return evaluate_frames(predictor, frames, methods, name in MAIN, args)


def evaluate_frames(
    predictor: SteeringPredictor, frames: Frames, methods: tuple[str, ...], insertion: bool, args: argparse.Namespace
) -> dict:
    """Each method's per-frame measures on `frames` (kept beside the checkpoint; a rerun resumes)."""
    folder = Path(predictor.checkpoint).parent / "eval"
    result: dict = {}
    for method in methods:
        settings = EvalSettings(steps=50, batch_size=args.eval_batch, seed=0, road_steps=args.road_steps,
                                insertion=insertion and method != "random", uniform=method == "attention",
                                sanity_frames=args.sanity_frames)  # fmt: skip
        if method == "random":
            settings.road_steps = 0  # the floor under deletion onto the mean; ROAD's floor is LeRF
        path = evaluate_method(predictor, method, frames, folder / f"{method}.jsonl", settings, args.jobs == 1)
        rows = read_results(path)
        sanity = sanity_method(predictor, method, frames, folder / f"{method}.sanity.json", settings)
        result[method] = {k: np.array([r[k] for r in rows]) for k in MEASURES if k in rows[0]}
        if "mask_mass_ratio" in rows[0]:
            result[method]["mask_mass_ratio"] = np.array([r["mask_mass_ratio"] for r in rows])
            result[method]["pointing"] = np.array([r["pointing_hit"] for r in rows], float)
        result[method]["sanity"] = read_sanity(sanity) if sanity else {}
        result[method]["sanity_uniform"] = read_sanity_uniform(sanity) if sanity else {}
        if method == "attention":
            result["uniform_shift"] = np.array([r["uniform_shift"] for r in rows])
    # the predictions are the model's, the same in every method's rows: the last method's will do
    errors = steering_errors([r["prediction"] for r in rows], [r["target"] for r in rows])
    result["rmse"], result["mae"] = errors["rmse"], errors["mae"]
    return result


Pair = tuple[str, int, list[str], tuple[str, ...]]  # (model name, seed, config overrides, methods)


def run_pair(pair: Pair, args: argparse.Namespace, data: Path) -> dict:
    """Train (or reuse) one (variant, seed) model and evaluate it; under --jobs, in a process of its own."""
    name, seed, overrides, methods = pair
    if args.jobs > 1 and torch.device(args.device).type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.jobs))
    return evaluate(name, methods, train(train_config(name, seed, overrides, args, data)), args, data)


def pareto(table: dict) -> list[dict]:
    """Grid points: RMSE ratio against both faithfulness ratios; `front`: no other point is at least as
    faithful under both protocols and as accurate, and better in one."""
    points = []
    for name in GRID:
        if name in table:
            att = table[name]["methods"]["attention"]
            points.append({"name": name, "seeds": table[name]["seeds"], "rmse_ratio": table[name]["rmse_ratio"],
                           "deletion_ratio": att["deletion_auc"]["vs_kim_canny"],
                           "deletion_ci": att["deletion_auc"]["vs_kim_canny_ci"],
                           "road_ratio": att["road_morf_auc"]["vs_kim_canny"],
                           "road_ci": att["road_morf_auc"]["vs_kim_canny_ci"],
                           "sanity_rho": att.get("sanity_rho"),
                           "uniform_shift": table[name]["uniform_shift"]})  # fmt: skip

    def dominates(a: dict, b: dict) -> bool:
        better = (a["deletion_ratio"] >= b["deletion_ratio"], a["road_ratio"] >= b["road_ratio"],
                  a["rmse_ratio"] <= b["rmse_ratio"])  # fmt: skip
        return all(better) and a != b

    for point in points:
        point["front"] = not any(dominates(other, point) for other in points)
    return points


def best_point(points: list[dict], rmse_limit: float = 1.05) -> dict | None:
    """The recommendation: within the RMSE limit, the highest lower interval bound under the weaker protocol."""
    fits = [p for p in points if p["rmse_ratio"] <= rmse_limit]
    return max(fits, key=lambda p: min(p["deletion_ci"][0], p["road_ci"][0]), default=None)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How models are trained and explained: shared by the synthetic headline and the real-frame benchmark."""
    parser.add_argument("--road-steps", type=int, default=5, help="ROAD removal fractions k/N")
    parser.add_argument("--sanity-frames", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--eval-batch", type=int, help="default: 64 on CPU, 1024 on GPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def pairs_to_run(args: argparse.Namespace) -> list[Pair]:
    """In order of need: the headline models (seed by seed; attention and random order), the post-hoc
    methods on the kim_canny models, then the grid points not among the headline models (attention)."""
    pairs = [(name, seed, o, ("attention", "random")) for seed in range(args.seeds) for name, o in MAIN.items()]
    pairs += [("kim_canny", seed, MAIN["kim_canny"], POSTHOC) for seed in range(args.posthoc_seeds)]
    grid = [(n, seed, o, ("attention",)) for seed in range(args.grid_seeds) for n, o in GRID.items() if n not in MAIN]
    return pairs + ([] if args.no_grid else grid)


def finished(pair: Pair, args: argparse.Namespace) -> bool:
    folder = Path(args.out) / "models" / f"{pair[0]}_s{pair[1]}" / "eval"
    return all(len(read_results(folder / f"{m}.jsonl")) == args.test_frames for m in pair[3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/headline")
    parser.add_argument("--name", default="headline", help="benchmarks/results/<name>.json (headline_main: --no-grid)")
    parser.add_argument("--train-frames", type=int, default=4000)
    parser.add_argument("--test-frames", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the headline variants")
    parser.add_argument("--grid-seeds", type=int, default=3, help="seeds of the other Pareto grid points")
    parser.add_argument("--posthoc-seeds", type=int, default=3, help="kim_canny seeds the post-hoc methods explain")
    parser.add_argument("--no-grid", action="store_true")
    add_run_arguments(parser)
    parser.add_argument("--jobs", type=int, default=1, help="(variant, seed) pairs trained and evaluated at once")
    parser.add_argument("--summarize", action="store_true", help="only summarize the models finished so far")
    parser.add_argument("--only", help="comma-separated <name>_s<seed> pairs to run (e.g. a second process)")
    args = parser.parse_args()
    data = Path(args.out) / "data"
    if not (data / "test" / "driving_log.csv").is_file():
        write_splits(data, {"train": args.train_frames, "val": 500, "test": args.test_frames}, seed=7)
    pairs = pairs_to_run(args)
    if args.only:
        pairs = [p for p in pairs if f"{p[0]}_s{p[1]}" in args.only.split(",")]
    if args.summarize:
        pairs = [p for p in pairs if finished(p, args)]
    # every pair reads the same caches: build them once here, not in several processes at once
    preprocessing = train_config(*pairs[0][:3], args, data).preprocessing
    for split in ("train", "val", "test"):
        build_cache(SimLogSource(data / split), preprocessing, data / "cache")
    results: dict[str, dict[int, dict]] = {}
    if args.jobs == 1 or args.summarize:
        for pair in tqdm(pairs, desc="models", unit="model", disable=not args.summarize):
            results.setdefault(pair[0], {}).setdefault(pair[1], {}).update(run_pair(pair, args, data))
    else:
        spawn = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        with ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
            jobs = {pool.submit(run_pair, pair, args, data): pair for pair in pairs}
            for job in tqdm(as_completed(jobs), total=len(jobs), desc="models", unit="model"):
                name, seed = jobs[job][:2]
                results.setdefault(name, {}).setdefault(seed, {}).update(job.result())
    table = summarize({name: [runs[seed] for seed in sorted(runs)] for name, runs in results.items()})
    points = pareto(table)
    best = best_point(points)
    write_json(Path(args.out) / "headline.json", table)
    write_text(Path(args.out) / "headline.md", markdown_table(table))
    plot_curves(Path(args.out), {n: sorted(results[n]) for n in MAIN if n in results},
                Path(args.out) / "deletion_curves.png")  # fmt: skip
    plot_pareto(points, Path(args.out) / "pareto.png")
    head = table[HEADLINE]["methods"]["attention"]
    summary = {
        "deletion_auc_ratio": round(head["deletion_auc"]["vs_kim_canny"], 3),
        "ci_low": round(head["deletion_auc"]["vs_kim_canny_ci"][0], 3),
        "ci_high": round(head["deletion_auc"]["vs_kim_canny_ci"][1], 3),
        "road_ratio": round(head["road_morf_auc"]["vs_kim_canny"], 3),
        "deletion_over_random_ratio": round(head["deletion_over_random"]["vs_kim_canny"], 3),
        "deletion_over_random_ci": [round(x, 3) for x in head["deletion_over_random"]["vs_kim_canny_ci"]],
        "road_morf_over_lerf_ratio": round(head["road_morf_over_lerf"]["vs_kim_canny"], 3),
        "road_morf_over_lerf_ci": [round(x, 3) for x in head["road_morf_over_lerf"]["vs_kim_canny_ci"]],
        "road_ci": [round(x, 3) for x in head["road_morf_auc"]["vs_kim_canny_ci"]],
        "rmse_ratio": round(table[HEADLINE]["rmse_ratio"], 3),
        "sanity_rho": round(head["sanity_rho"], 3),
        "uniform_effect": round(table[HEADLINE]["uniform_shift_over_rmse"], 3),
        "seeds": table[HEADLINE]["seeds"],  # as finished, which may be fewer than asked for
        "grid_points_finished": len(points),
        "best_grid_point": best["name"] if best else None,
    }
    keys = ("train_frames", "test_frames", "epochs", "seeds", "grid_seeds", "posthoc_seeds", "road_steps",
            "sanity_frames", "batch", "jobs")  # fmt: skip
    settings = {k: getattr(args, k) for k in keys}
    settings["models_finished"] = {name: sorted(runs) for name, runs in results.items()}
    record(args.name, summary, headline_variant=HEADLINE, settings=settings, variants=table, pareto=points)
    print(markdown_table(table))
    for name, entry in table.items():
        att = entry["methods"]["attention"]
        print(f"{name:20s} seeds {entry['seeds']} deletion x{att['deletion_auc']['vs_kim_canny']:.2f} "
              f"[{att['deletion_auc']['vs_kim_canny_ci'][0]:.2f}, {att['deletion_auc']['vs_kim_canny_ci'][1]:.2f}] "
              f"ROAD x{att['road_morf_auc']['vs_kim_canny']:.2f} [{att['road_morf_auc']['vs_kim_canny_ci'][0]:.2f}, "
              f"{att['road_morf_auc']['vs_kim_canny_ci'][1]:.2f}] RMSE x{entry['rmse_ratio']:.2f} "
              f"rho {att.get('sanity_rho', float('nan')):.2f} "
              f"uniform {entry['uniform_shift_over_rmse']:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
