#!/usr/bin/env python3
"""The headline experiment: deletion AUC of each variant's attention vs Kim & Canny's, over seeds.

    python -m benchmarks.headline                                  # CPU configuration, ~50 min on 2 cores
    python -m benchmarks.headline --train-frames 20000 --epochs 15 --test-frames 1000 --seeds 5 \
        --no-ablation --jobs 10                                    # full size; one GPU trains ten at once

Trains kim_canny, quant_all (b=2), quant_sign (b=2, rest dropout 0.5) and binary_sign with
several seeds on synthetic roads, plus quant_sign with b = 4 and 8 (b = 1 is binary_sign),
and evaluates the attention and the random order on held-out frames rendered with a
generator seed never used for training. Finished models and evaluations are reused,
so an interrupted run continues where it stopped. `--jobs N` runs N independent
(variant, seed) pairs in N processes.

Intervals: a hierarchical bootstrap (resample seeds, then frames within each seed) of the
ratio of mean deletion AUCs, so seed-to-seed spread is part of the interval.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from benchmarks.record import record
from qattn_ros.data.cache import build_cache
from qattn_ros.data.simlog import SimLogSource
from qattn_ros.data.splits import write_splits
from qattn_ros.explain.engine import EvalSettings, evaluate_method, read_results
from qattn_ros.fit.config import TrainConfig, load_train_config
from qattn_ros.fit.trainer import Trainer
from qattn_ros.metrics import steering_errors
from qattn_ros.predictor import SteeringPredictor

ROOT = Path(__file__).resolve().parents[1]
MAIN = {
    "kim_canny": ["model.variant=kim_canny"],
    "quant_all_b2": ["model.variant=quant_all", "model.bits=2"],
    "quant_sign_b2": ["model.variant=quant_sign", "model.bits=2", "model.rest_dropout=0.5"],
    "binary_sign": ["model.variant=binary_sign"],
}
ABLATION = {
    "quant_sign_b4": ["model.variant=quant_sign", "model.bits=4", "model.rest_dropout=0.5"],
    "quant_sign_b8": ["model.variant=quant_sign", "model.bits=8", "model.rest_dropout=0.5"],
}
HEADLINE = "binary_sign"  # the best reading of the method here (see README); quant_sign_b2 is reported beside it


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


def evaluate(checkpoint: Path, args: argparse.Namespace, data: Path) -> dict:
    predictor = SteeringPredictor(checkpoint, args.device)
    frames = predictor.frames(SimLogSource(data / "test"), data / "cache", args.test_frames)
    settings = EvalSettings(steps=50, batch_size=args.eval_batch, seed=0)
    folder = checkpoint.parent / "eval"
    result = {}
    for method in ("attention", "random"):
        path = evaluate_method(predictor, method, frames, folder / f"{method}.jsonl", settings, args.jobs == 1)
        rows = read_results(path)
        result[method] = {
            k: np.array([r[k] for r in rows]) for k in ("deletion_auc", "insertion_auc", "mask_mass_ratio")
        }
        result[method]["pointing"] = np.array([r["pointing_hit"] for r in rows], float)
    # the predictions are the model's, the same in every method's rows: the last method's will do
    result["rmse"] = steering_errors([r["prediction"] for r in rows], [r["target"] for r in rows])["rmse"]
    return result


def run_pair(name: str, seed: int, overrides: list[str], args: argparse.Namespace, data: Path) -> dict:
    """Train (or reuse) one (variant, seed) model and evaluate it; under --jobs, in a process of its own."""
    if args.jobs > 1 and torch.device(args.device).type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.jobs))
    return evaluate(train(train_config(name, seed, overrides, args, data)), args, data)


def hierarchical_means(per_seed: list[np.ndarray], rng: np.random.Generator, draws: int) -> np.ndarray:
    """Bootstrap distribution of the mean over seeds of per-seed frame means."""
    seeds = len(per_seed)
    out = np.empty(draws)
    for d in range(draws):
        picks = rng.integers(0, seeds, seeds)
        out[d] = np.mean([per_seed[s][rng.integers(0, len(per_seed[s]), len(per_seed[s]))].mean() for s in picks])
    return out


def summarize(results: dict[str, list[dict]], draws: int = 2000) -> dict:
    rng = np.random.default_rng(0)
    base = [r["attention"]["deletion_auc"] for r in results["kim_canny"]]
    base_boot = hierarchical_means(base, rng, draws)
    base_rmse = np.mean([r["rmse"] for r in results["kim_canny"]])
    table = {}
    for name, runs in results.items():
        auc = [r["attention"]["deletion_auc"] for r in runs]
        rand = [r["random"]["deletion_auc"] for r in runs]
        boot = hierarchical_means(auc, rng, draws)
        ratio = boot / base_boot
        per_seed = [float(a.mean()) for a in auc]
        table[name] = {
            "seeds": len(runs),
            "deletion_auc_mean": float(np.mean(per_seed)),
            "deletion_auc_sd_over_seeds": float(np.std(per_seed, ddof=1)) if len(runs) > 1 else 0.0,
            "deletion_auc_per_seed": per_seed,
            "deletion_auc_ci": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "vs_kim_canny": float(np.mean(per_seed) / np.mean([a.mean() for a in base])),
            "vs_kim_canny_ci": [float(np.percentile(ratio, 2.5)), float(np.percentile(ratio, 97.5))],
            "vs_random": float(np.mean([a.mean() / b.mean() for a, b in zip(auc, rand)])),
            "insertion_auc_mean": float(np.mean([r["attention"]["insertion_auc"].mean() for r in runs])),
            "pointing": float(np.mean([r["attention"]["pointing"].mean() for r in runs])),
            "mask_mass_ratio": float(np.mean([np.nanmean(r["attention"]["mask_mass_ratio"]) for r in runs])),
            "rmse_mean": float(np.mean([r["rmse"] for r in runs])),
            "rmse_ratio": float(np.mean([r["rmse"] for r in runs]) / base_rmse),
        }
    return table


def plot_curves(out: Path, names: list[str], seeds: int, figure: Path) -> None:
    """Mean deletion curve of each variant's attention (over seeds and frames), random order dashed."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for name in names:
        curves = {m: [] for m in ("attention", "random")}
        for seed in range(seeds):
            for method in curves:
                rows = read_results(out / "models" / f"{name}_s{seed}" / "eval" / f"{method}.jsonl")
                curves[method] += [r["deletion"] for r in rows]
        steps = np.linspace(0, 1, len(curves["attention"][0]))
        (line,) = ax.plot(steps, np.mean(curves["attention"], axis=0), label=f"{name} attention")
        ax.plot(steps, np.mean(curves["random"], axis=0), "--", color=line.get_color(), alpha=0.5, lw=1)
    ax.set_xlabel("fraction of pixels deleted (most attended first; dashed: random order)")
    ax.set_ylabel("|steering change| (simulator units)")
    ax.set_title(f"Deletion curves, held-out synthetic frames, mean over {seeds} seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(figure, dpi=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/headline")
    parser.add_argument("--train-frames", type=int, default=4000)
    parser.add_argument("--test-frames", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--eval-batch", type=int, help="default: 64 on CPU, 1024 on GPU")
    parser.add_argument("--no-ablation", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--jobs", type=int, default=1, help="(variant, seed) pairs trained and evaluated at once")
    args = parser.parse_args()
    data = Path(args.out) / "data"
    if not (data / "test" / "driving_log.csv").is_file():
        write_splits(data, {"train": args.train_frames, "val": 500, "test": args.test_frames}, seed=7)
    variants = {**MAIN, **({} if args.no_ablation else ABLATION)}
    pairs = [(name, seed, overrides) for seed in range(args.seeds) for name, overrides in variants.items()]
    # every pair reads the same caches: build them once here, not in several processes at once
    preprocessing = train_config(*pairs[0], args, data).preprocessing
    for split in ("train", "val", "test"):
        build_cache(SimLogSource(data / split), preprocessing, data / "cache")
    results: dict[str, dict[int, dict]] = {name: {} for name in variants}
    if args.jobs == 1:
        for name, seed, overrides in pairs:
            results[name][seed] = run_pair(name, seed, overrides, args, data)
    else:
        spawn = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        with ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
            jobs = {pool.submit(run_pair, name, seed, overrides, args, data): (name, seed)
                    for name, seed, overrides in pairs}  # fmt: skip
            for job in tqdm(as_completed(jobs), total=len(jobs), desc="models", unit="model"):
                name, seed = jobs[job]
                results[name][seed] = job.result()
    table = summarize({name: [runs[seed] for seed in sorted(runs)] for name, runs in results.items()})
    (Path(args.out) / "headline.json").write_text(json.dumps(table, indent=2))
    plot_curves(Path(args.out), list(MAIN), args.seeds, Path(args.out) / "deletion_curves.png")
    head = table[HEADLINE]
    summary = {
        "deletion_auc_ratio": round(head["vs_kim_canny"], 3),
        "ci_low": round(head["vs_kim_canny_ci"][0], 3),
        "ci_high": round(head["vs_kim_canny_ci"][1], 3),
        "rmse_ratio": round(head["rmse_ratio"], 3),
        "seeds": args.seeds,
        "quant_sign_b2_ratio": round(table["quant_sign_b2"]["vs_kim_canny"], 3),
        "quant_sign_b2_ci": [round(x, 3) for x in table["quant_sign_b2"]["vs_kim_canny_ci"]],
    }
    settings = {k: getattr(args, k) for k in ("train_frames", "test_frames", "epochs", "seeds", "batch", "jobs")}
    record("headline", summary, headline_variant=HEADLINE, settings=settings, variants=table)
    for name, row in table.items():
        print(f"{name:15s} del AUC {row['deletion_auc_mean']:.4f} ± {row['deletion_auc_sd_over_seeds']:.4f} "
              f"x{row['vs_kim_canny']:.2f} [{row['vs_kim_canny_ci'][0]:.2f}, {row['vs_kim_canny_ci'][1]:.2f}] "
              f"/random {row['vs_random']:.2f} RMSE x{row['rmse_ratio']:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
