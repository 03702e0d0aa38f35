"""Comparing explanations of different models over training seeds: means, ratios to kim_canny, intervals.

A raw AUC ratio between two models mixes how faithful a map is with how much the model's output
moves under any deletion. So each model is also measured against its own floor: deletion AUC over
the same model's random-order AUC on the same frames, and ROAD's most-relevant-first AUC over its
least-relevant-first AUC; the cross-model figure is the ratio of those normalized values.

Intervals: a hierarchical bootstrap (resample seeds, then frames within each seed), so the
seed-to-seed spread is part of the interval; a normalized value resamples each frame together with
its own floor (paired).
"""

from __future__ import annotations

import numpy as np

MEASURES = ("deletion_auc", "road_morf_auc", "road_lerf_auc", "insertion_auc")
# normalized measure -> (numerator: measure of the method, floor: (method or None for the same, measure))
NORMALIZED = {
    "deletion_over_random": ("deletion_auc", ("random", "deletion_auc")),
    "road_morf_over_lerf": ("road_morf_auc", (None, "road_lerf_auc")),
}


def hierarchical_means(per_seed: list[np.ndarray], rng: np.random.Generator, draws: int) -> np.ndarray:
    """Bootstrap distribution of the mean over seeds of per-seed frame means."""
    seeds = len(per_seed)
    out = np.empty(draws)
    for d in range(draws):
        picks = rng.integers(0, seeds, seeds)
        out[d] = np.mean([per_seed[s][rng.integers(0, len(per_seed[s]), len(per_seed[s]))].mean() for s in picks])
    return out


def hierarchical_ratios(pairs: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator, draws: int) -> np.ndarray:
    """Bootstrap distribution of the mean over seeds of mean(numerator) / mean(floor), frames paired."""
    seeds = len(pairs)
    out = np.empty(draws)
    for d in range(draws):
        values = []
        for s in rng.integers(0, seeds, seeds):
            top, floor = pairs[s]
            index = rng.integers(0, len(top), len(top))
            values.append(top[index].mean() / max(floor[index].mean(), 1e-12))
        out[d] = np.mean(values)
    return out


def interval(values: np.ndarray) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def ratio_stats(mine: list[np.ndarray], base: list[np.ndarray], rng: np.random.Generator, draws: int) -> dict:
    """mean over seeds of per-seed frame means, its ratio to the baseline's, and hierarchical intervals."""
    boot, base_boot = hierarchical_means(mine, rng, draws), hierarchical_means(base, rng, draws)
    per_seed = [float(a.mean()) for a in mine]
    return {
        "mean": float(np.mean(per_seed)),
        "sd_over_seeds": float(np.std(per_seed, ddof=1)) if len(mine) > 1 else 0.0,
        "per_seed": per_seed,
        "ci": interval(boot),
        "vs_kim_canny": float(np.mean(per_seed) / np.mean([a.mean() for a in base])),
        "vs_kim_canny_ci": interval(boot / base_boot),
    }


def normalized_stats(
    mine: list[tuple[np.ndarray, np.ndarray]], base: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator,
    draws: int,
) -> dict:  # fmt: skip
    """Per seed mean(numerator) / mean(floor) over the same frames; the mean over seeds, its ratio to the
    baseline's, and hierarchical intervals."""
    per_seed = [float(top.mean() / max(floor.mean(), 1e-12)) for top, floor in mine]
    base_value = np.mean([top.mean() / max(floor.mean(), 1e-12) for top, floor in base])
    boot, base_boot = hierarchical_ratios(mine, rng, draws), hierarchical_ratios(base, rng, draws)
    return {
        "mean": float(np.mean(per_seed)),
        "per_seed": per_seed,
        "ci": interval(boot),
        "vs_kim_canny": float(np.mean(per_seed) / base_value),
        "vs_kim_canny_ci": interval(boot / base_boot),
    }


def seed_interval(values: list[float]) -> list[float]:
    """2.5 and 97.5 percentiles of the mean over a bootstrap of seeds (a single seed: that value twice)."""
    rng = np.random.default_rng(1)
    values = np.asarray(values, np.float64)
    return interval(values[rng.integers(0, len(values), (2000, len(values)))].mean(axis=1))


def _normalized_pairs(runs: list[dict], method: str, name: str) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """(numerator, floor) per seed for `name` of `method`, or None where a seed lacks either."""
    measure, (floor_method, floor_measure) = NORMALIZED[name]
    pairs = []
    for run in runs:
        top = run.get(method, {}).get(measure)
        floor = run.get(floor_method or method, {}).get(floor_measure)
        if top is None or floor is None or len(top) != len(floor):
            return None
        pairs.append((top, floor))
    return pairs


def summarize(results: dict[str, list[dict]], draws: int = 2000) -> dict:
    """{model: {method: measures with across-seed intervals}}; the baseline is kim_canny's attention.

    `results[model]` holds one dict per seed: {method: {measure: per-frame array, "sanity": ...}, "rmse",
    "uniform_shift"} (see benchmarks/headline.py's `evaluate`); the mask measures are optional.
    """
    rng = np.random.default_rng(0)
    base_runs = results["kim_canny"]
    base_rmse = np.mean([r["rmse"] for r in base_runs])
    table = {}
    for name, runs in results.items():
        rmse = [r["rmse"] for r in runs]
        entry = {"seeds": len(runs), "rmse_mean": float(np.mean(rmse)), "rmse_ci": seed_interval(rmse),
                 "rmse_ratio": float(np.mean(rmse) / base_rmse), "methods": {}}  # fmt: skip
        for key in ("mae", "mean_rmse"):
            if all(key in r for r in runs):
                entry[f"{key}_mean"] = float(np.mean([r[key] for r in runs]))
        shift = [float(r["uniform_shift"].mean()) for r in runs]
        entry["uniform_shift"], entry["uniform_shift_ci"] = float(np.mean(shift)), seed_interval(shift)
        entry["uniform_shift_over_rmse"] = float(np.mean(shift) / np.mean(rmse))
        for method in dict.fromkeys(m for r in runs for m, v in r.items() if isinstance(v, dict)):
            have = [r for r in runs if method in r]
            row: dict = {"seeds": len(have)}
            for measure in MEASURES:
                if measure in have[0][method] and measure in base_runs[0]["attention"]:
                    row[measure] = ratio_stats([r[method][measure] for r in have],
                                               [r["attention"][measure] for r in base_runs], rng, draws)  # fmt: skip
            for normalized in NORMALIZED:
                if method == "random":
                    continue
                mine = _normalized_pairs(have, method, normalized)
                base = _normalized_pairs(base_runs, "attention", normalized)
                if mine and base:
                    row[normalized] = normalized_stats(mine, base, rng, draws)
            for measure in ("pointing", "mask_mass_ratio"):
                if measure in have[0][method]:
                    values = [float(np.nanmean(r[method][measure])) for r in have]
                    row[measure], row[f"{measure}_ci"] = float(np.mean(values)), seed_interval(values)
            if have[0][method].get("sanity"):
                final = [list(r[method]["sanity"].values())[-1] for r in have]
                row["sanity_rho"], row["sanity_rho_ci"] = float(np.mean(final)), seed_interval(final)
                stages = have[0][method]["sanity"]
                row["sanity_by_stage"] = {s: float(np.mean([r[method]["sanity"][s] for r in have])) for s in stages}
                # the share of frames whose fully randomized map came out uniform (rho 0 by convention)
                row["sanity_uniform"] = float(np.mean([list(r[method]["sanity_uniform"].values())[-1] for r in have]))
            entry["methods"][method] = row
        table[name] = entry
    return table
