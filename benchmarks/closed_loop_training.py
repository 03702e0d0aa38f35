#!/usr/bin/env python3
"""Does closed-loop training make the explainable driver the robust one, and keep its explanation?

    python -m benchmarks.closed_loop_training --mode small            # 1 seed, a first look
    python -m benchmarks.closed_loop_training --mode full --jobs 2    # 3 seeds, the table: < 2 h on 2 CPU cores
    python -m benchmarks.closed_loop_training --mode full --jobs 16   # the same on 16 cores and a GPU: ~12 min

Recipes, for kim_canny, quant_sign (b = 2, rest dropout 0.5) and binary_sign over seeds:
(a) today's: the static synthetic frames (config/train/synthetic.yaml);
(b) augmentation only: (a)'s frames plus round 0 of config/train/closed_loop.yaml — pure pursuit drives
    randomized training roads, every frame and the recovery views labelled by it;
(c) DAgger + augmentation: (b) then `--rounds` on-policy rounds (the model drives, beta-mixed, the expert
    labels, the model is fine-tuned on the aggregate). (b) is (c)'s round 0, the same checkpoint.
Per checkpoint: the closed-loop sweep (`qattn_ros.sim.sweep`, held-out roads, every axis) — breaking
points, nominal p95 |offset| and steering jerk —, test RMSE on held-out frames, and the attention's
deletion-onto-the-mean and ROAD ratios against kim_canny of the same recipe with the sanity check's
rho (`benchmarks.headline`'s evaluation and summary). Breaking points over seeds: the median (a level
value; None = never broke, counted as beyond the last level). Finished models, evaluations and drives
are reused: an interrupted run continues. Writes benchmarks/results/closed_loop_training[.<gpu>].json,
docs/closed_loop_training.png and docs/closed_loop_training_table.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.closed_loop import cpu_seconds
from benchmarks.headline import evaluate, summarize
from benchmarks.record import record
from qattn_ros.data.cache import build_cache
from qattn_ros.data.simlog import SimLogSource
from qattn_ros.data.splits import write_splits
from qattn_ros.fit.config import TrainConfig, load_train_config, read_yaml
from qattn_ros.fit.dagger import ClosedLoopTraining, DaggerConfig
from qattn_ros.fit.trainer import Trainer
from qattn_ros.sim.sweep import AXES, AXIS_NAMES, PURSUIT, run_sweep

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("kim_canny", "quant_sign", "binary_sign")
RECIPES = {"a": "today", "b": "augmentation", "c": "dagger+augmentation"}
MODES = {  # what each mode trains and drives
    "small": {"seeds": 1, "train_frames": 1500, "test_frames": 48, "epochs": 3, "rounds": 1, "worlds": 4,
              "track_m": 150.0, "finetune_epochs": 1, "tracks": 2, "sweep_m": 150.0, "road_steps": 5,
              "sanity_frames": 8},
    "full": {"seeds": 3, "train_frames": 4000, "test_frames": 200, "epochs": 5, "rounds": 2, "worlds": 8,
             "track_m": 200.0, "finetune_epochs": 2, "tracks": 2, "sweep_m": 150.0, "road_steps": 5,
             "sanity_frames": 16},
}  # fmt: skip
PLOT = ROOT / "docs" / "closed_loop_training.png"
TABLE = ROOT / "docs" / "closed_loop_training_table.md"


def base_config(variant: str, seed: int, out: Path, args: argparse.Namespace, data: Path) -> TrainConfig:
    return load_train_config(ROOT / "config" / "train" / "synthetic.yaml", [
        f"seed={seed}", f"out={out}", f"optim.epochs={args.epochs}", f"device={args.device}",
        f"data.train=[{{kind: simlog, path: '{data / 'train'}'}}]",
        f"data.val=[{{kind: simlog, path: '{data / 'val'}'}}]", f"data.cache_dir={data / 'cache'}",
        f"progress={args.jobs == 1}",
    ], model_path=str(ROOT / "config" / "models" / f"{variant}.yaml"))  # fmt: skip


def checkpoints_of(variant: str, seed: int, args: argparse.Namespace) -> dict[str, Path]:
    """recipe -> where its checkpoint of (variant, seed) is (b is round 0 of c)."""
    models = Path(args.out) / "models"
    loop = models / f"closed_loop_{variant}_s{seed}"
    return {"a": models / f"today_{variant}_s{seed}" / "best", "b": loop / "round_0" / "model" / "best",
            "c": loop / "best"}  # fmt: skip


def train_pair(variant: str, seed: int, args: argparse.Namespace, data: Path) -> dict[str, Path]:
    """Recipe (a) and recipes (b, c) of one (variant, seed); finished ones are kept."""
    if args.jobs > 1 and torch.device(args.device).type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.jobs))
    paths = checkpoints_of(variant, seed, args)
    today = paths["a"].parent
    if not (today / "history.json").is_file():
        Trainer(base_config(variant, seed, today, args, data)).fit()
    loop = read_yaml(ROOT / "config" / "train" / "closed_loop.yaml")["closed_loop"]
    loop.update(rounds=args.rounds, worlds_per_round=args.worlds, track_m=args.track_m, world_seed=seed,
                finetune_epochs=args.finetune_epochs)  # fmt: skip
    train = base_config(variant, seed, paths["c"].parent, args, data)
    ClosedLoopTraining(train, DaggerConfig.from_dict(loop), paths["c"].parent, args.device).run()
    return paths


def evaluate_pair(variant: str, seed: int, args: argparse.Namespace, data: Path) -> dict[str, dict]:
    """recipe -> headline's evaluation of the attention (deletion, ROAD, sanity, uniform shift, RMSE)."""
    return {recipe: evaluate(f"{variant}_{recipe}", ("attention",), path, args, data)
            for recipe, path in checkpoints_of(variant, seed, args).items()}  # fmt: skip


def work(variant: str, seed: int, args: argparse.Namespace, data: Path) -> tuple[str, int, dict]:
    train_pair(variant, seed, args, data)
    return variant, seed, evaluate_pair(variant, seed, args, data)


def median_breaking(values: list[float | None], axis: str) -> float | None:
    """The median level over seeds, None (never broke) ranked beyond the last level."""
    levels = [level.value for level in next(a for a in AXES if a.name == axis).levels]
    ranks = sorted(len(levels) if v is None else levels.index(v) for v in values)
    rank = ranks[(len(ranks) - 1) // 2]  # the lower median: the pessimistic middle seed
    return None if rank == len(levels) else levels[rank]


def at_least(mine: float | None, other: float | None, axis: str) -> bool:
    """Is breaking point `mine` as far out as `other` (None: never broke)?"""
    levels = [level.value for level in next(a for a in AXES if a.name == axis).levels]
    rank = {None: len(levels), **{v: i for i, v in enumerate(levels)}}
    return rank[mine] >= rank[other]


def table_rows(summary: dict, pursuit: dict) -> str:
    axes = list(pursuit)
    lines = ["| recipe | model | " + " | ".join(f"{a} BP" for a in axes) + " | p95 \\|offset\\| m | jerk | test RMSE "
             "(× kc) | deletion × kc | ROAD × kc | sanity ρ |", "|---|---|" + "---|" * (len(axes) + 6)]  # fmt: skip
    lines.append("| – | pursuit | " + " | ".join(_level(pursuit[a]) for a in axes) + " | | | | | | |")
    for recipe, by_model in summary.items():
        for model, row in by_model.items():
            lines.append(
                f"| {recipe} {RECIPES[recipe]} | {model} | "
                + " | ".join(_level(row["breaking_point"][a]) for a in axes)
                + f" | {row['p95_abs_offset_m']:.2f} | {row['steering_jerk_rms']:.2f} | {row['test_rmse']:.4f} "
                f"({row['rmse_ratio']:.2f}) | {row['deletion_ratio']:.2f} | {row['road_ratio']:.2f} "
                f"| {row['sanity_rho']:.2f} |"
            )  # fmt: skip
    return "\n".join(lines) + "\n"


def _level(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


def plot(sweep: dict, names: dict[str, tuple[str, str, int]], out: Path) -> None:
    """Autonomy against each axis, mean over seeds, per recipe and model; pure pursuit dashed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 8))
    panels = fig.subplots(2, 3).ravel()
    styles = {"a": ":", "b": "--", "c": "-"}
    colours = {v: f"C{i}" for i, v in enumerate(VARIANTS)}
    for ax, (axis, levels) in zip(panels, sweep.items(), strict=False):
        values = [float(v) for v in levels]
        ax.plot(values, [100 * lv[PURSUIT]["autonomy"] for lv in levels.values()], color="black", lw=2.5,
                alpha=0.3, label="pursuit")  # fmt: skip
        for recipe in RECIPES:
            for variant in VARIANTS:
                drivers = [n for n, (r, v, _) in names.items() if (r, v) == (recipe, variant)]
                if drivers:
                    mean = [100 * np.mean([lv[d]["autonomy"] for d in drivers]) for lv in levels.values()]
                    ax.plot(values, mean, styles[recipe], color=colours[variant], marker="o", ms=3,
                            label=f"{variant} ({recipe})")  # fmt: skip
        ax.axhline(99, color="red", lw=0.7, ls=":")
        ax.set_title(axis, fontsize=10)
        ax.set_ylabel("autonomy %")
        ax.grid(alpha=0.3)
    panels[0].legend(fontsize=7, ncol=2, loc="lower left")
    fig.suptitle("closed-loop sweep by recipe: (a) today dotted, (b) augmentation dashed, (c) DAgger + aug. solid")
    fig.tight_layout()
    fig.savefig(out, dpi=80)


def acceptance(summary: dict, pursuit: dict, recipe: str, model: str = "binary_sign") -> dict:
    """The issue's bar for `model` trained with `recipe`: each check and whether it holds, as measured."""
    row, base = summary[recipe][model], summary[recipe]["kim_canny"]
    checks = {f"bp_{a}_vs_kim_canny": at_least(row["breaking_point"][a], base["breaking_point"][a], a)
              for a in row["breaking_point"]}  # fmt: skip
    for a in ("speed", "steering_delay", "gust", "curvature"):
        if a in row["breaking_point"]:
            checks[f"bp_{a}_vs_pursuit"] = at_least(row["breaking_point"][a], pursuit[a], a)
    if "camera" in row["breaking_point"]:
        checks["camera_bp_ge_5"] = at_least(row["breaking_point"]["camera"], 5, "camera")
    checks.update(deletion_ge_1_5=row["deletion_ratio"] >= 1.5, road_ge_1_5=row["road_ratio"] >= 1.5,
                  sanity_rho_le_0_5=row["sanity_rho"] <= 0.5, rmse_le_1_05=row["rmse_ratio"] <= 1.05)  # fmt: skip
    return {"recipe": recipe, "model": model, "checks": checks, "all": all(checks.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, default="small")
    parser.add_argument("--out", help="default: runs/closed_loop_training_<mode>")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--axes", nargs="+", default=list(AXIS_NAMES), choices=AXIS_NAMES)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--jobs", type=int, default=1, help="(variant, seed) pairs and sweep drives at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process on the CPU")
    for key, value in MODES["small"].items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), help="default: the mode's")
    args = parser.parse_args(argv)
    for key, value in MODES[args.mode].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.out = args.out or f"runs/closed_loop_training_{args.mode}"
    args.eval_batch = None  # headline's evaluation: 64 on CPU, 1024 on GPU
    if torch.device(args.device).type == "cpu":
        torch.set_num_threads(args.threads)
    start_wall, start_cpu = time.monotonic(), cpu_seconds()
    data = Path(args.out) / "data"
    if not (data / "test" / "driving_log.csv").is_file():
        write_splits(data, {"train": args.train_frames, "val": 300, "test": args.test_frames}, seed=7)
    preprocessing = base_config(VARIANTS[0], 0, Path(args.out), args, data).preprocessing
    for split in ("train", "val", "test"):  # once here, not in several processes at once
        build_cache(SimLogSource(data / split), preprocessing, data / "cache")
    pairs = [(v, s) for s in range(args.seeds) for v in args.variants]
    evaluations: dict[tuple[str, int], dict] = {}
    if args.jobs == 1:
        for variant, seed in tqdm(pairs, desc="models", unit="pair"):
            evaluations[variant, seed] = work(variant, seed, args, data)[2]
    else:
        spawn = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        with ProcessPoolExecutor(min(args.jobs, len(pairs)), mp_context=spawn) as pool:
            jobs = [pool.submit(work, variant, seed, args, data) for variant, seed in pairs]
            for job in tqdm(as_completed(jobs), total=len(jobs), desc="models", unit="pair"):
                variant, seed, result = job.result()
                evaluations[variant, seed] = result
    train_wall = time.monotonic() - start_wall
    names = {f"{r}_{v}_s{s}": (r, v, s) for (v, s) in pairs for r in RECIPES}
    drivers = {name: str(checkpoints_of(v, s, args)[r]) for name, (r, v, s) in names.items()}
    sweep = run_sweep(drivers, args.axes, args.tracks, args.sweep_m, args.jobs, Path(args.out) / "drives")
    summary_table: dict = {}
    for recipe in RECIPES:
        runs = {v: [evaluations[v, s][recipe] for s in range(args.seeds)] for v in args.variants}
        headline = summarize(runs, draws=500)
        for variant in args.variants:
            mine = [n for n, (r, v, _) in names.items() if (r, v) == (recipe, variant)]
            nominal = [next(iter(sweep.sweep[args.axes[0]].values()))[n] for n in mine]
            attention = headline[variant]["methods"]["attention"]
            summary_table.setdefault(recipe, {})[variant] = {
                "breaking_point": {a: median_breaking([sweep.breaking_point[a][n] for n in mine], a)
                                   for a in args.axes},
                "breaking_point_per_seed": {a: [sweep.breaking_point[a][n] for n in mine] for a in args.axes},
                "p95_abs_offset_m": float(np.mean([f["p95_abs_offset_m"] for f in nominal])),
                "steering_jerk_rms": float(np.mean([f["steering_jerk_rms"] for f in nominal])),
                "test_rmse": headline[variant]["rmse_mean"], "rmse_ratio": headline[variant]["rmse_ratio"],
                "deletion_ratio": attention["deletion_auc"]["vs_kim_canny"],
                "deletion_ci": attention["deletion_auc"]["vs_kim_canny_ci"],
                "road_ratio": attention["road_morf_auc"]["vs_kim_canny"],
                "road_ci": attention["road_morf_auc"]["vs_kim_canny_ci"],
                "sanity_rho": attention.get("sanity_rho", float("nan")),
            }  # fmt: skip
    pursuit = {a: sweep.breaking_point[a][PURSUIT] for a in args.axes}
    nominal_pursuit = next(iter(sweep.sweep[args.axes[0]].values()))[PURSUIT]
    table = table_rows(summary_table, pursuit)
    command = " ".join(["python -m benchmarks.closed_loop_training", *(sys.argv[1:] if argv is None else argv)])
    TABLE.write_text(f"Closed-loop training by recipe (`{command}`), written by the benchmark. BP: breaking point "
                     "(first level < 99 % autonomy; median over seeds; none: never broke). Ratios against kim_canny "
                     f"of the same recipe.\n\n{table}")  # fmt: skip
    plot(sweep.sweep, names, PLOT)
    print(table)
    checks = {recipe: acceptance(summary_table, pursuit, recipe) for recipe in RECIPES if "binary_sign" in
              args.variants and "kim_canny" in args.variants}  # fmt: skip
    wall, cpu = time.monotonic() - start_wall, cpu_seconds() - start_cpu
    summary = {
        "breaking_point": {r: {v: row["breaking_point"] for v, row in by.items()} for r, by in summary_table.items()},
        "pursuit_breaking_point": pursuit,
        "p95_abs_offset_m": {
            r: {v: round(row["p95_abs_offset_m"], 3) for v, row in by.items()} for r, by in summary_table.items()
        },  # fmt: skip
        "pursuit_p95_abs_offset_m": round(nominal_pursuit["p95_abs_offset_m"], 3),
        "test_rmse": {r: {v: round(row["test_rmse"], 5) for v, row in by.items()} for r, by in summary_table.items()},
        "deletion_ratio": {
            r: {v: round(row["deletion_ratio"], 3) for v, row in by.items()} for r, by in summary_table.items()
        },  # fmt: skip
        "road_ratio": {r: {v: round(row["road_ratio"], 3) for v, row in by.items()} for r, by in summary_table.items()},
        "sanity_rho": {r: {v: round(row["sanity_rho"], 3) for v, row in by.items()} for r, by in summary_table.items()},
        "acceptance_met": {r: c["all"] for r, c in checks.items()},
        "seeds": args.seeds,
        "mode": args.mode,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
    }
    settings = {k: getattr(args, k) for k in ("mode", *MODES["small"], "variants", "axes", "device", "jobs")}
    record("closed_loop_training", summary, recipes=RECIPES, settings=settings, table=summary_table,
           acceptance=checks, sweep=sweep.sweep, breaking_point=sweep.breaking_point, axes=sweep.axes,
           checkpoints=drivers, timing={"wall_s": wall, "cpu_s": cpu, "train_eval_wall_s": train_wall,
                                        "sweep_wall_s": wall - train_wall, "cached_drives": sweep.cached,
                                        "load_at_end": os.getloadavg()})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
