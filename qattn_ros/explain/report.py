"""Aggregate per-frame results into results.json, a Markdown table and plots.

Means carry 95 % bootstrap intervals over frames; ratios (to the random order of the same
model, to the Kim & Canny attention) are ratios of means with paired bootstrap intervals
over the frames both were computed on, under deletion onto the substrate and under ROAD
(most relevant first). The sanity check reports the mean Spearman rho between trained and
randomized maps after each stage of the cascade; `sanity_rho` is the last (all layers random).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..core.atomic import read_json, save_figure, write_json, write_text
from ..core.metrics import steering_errors
from .engine import read_results
from .overlay import overlay

BASELINE = ("kim_canny", "attention")
RESAMPLES = 2000


def bootstrap_mean(values: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (RESAMPLES, len(values)))].mean(axis=1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def bootstrap_ratio(numerator: np.ndarray, denominator: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """mean(numerator) / mean(denominator) with a paired bootstrap interval."""
    a, b = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(a), (RESAMPLES, len(a)))
    ratios = a[index].mean(axis=1) / np.maximum(b[index].mean(axis=1), 1e-12)
    return float(a.mean() / max(b.mean(), 1e-12)), float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


def _by_frame(rows: list[dict], key: str) -> dict[int, float]:
    return {r["frame"]: r[key] for r in rows if r.get(key) is not None}


def _paired(a: dict[int, float], b: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    common = sorted(set(a) & set(b))
    return np.array([a[f] for f in common]), np.array([b[f] for f in common])


def aggregate(folder: Path) -> dict:
    """Summaries of every <model>/<method>.jsonl under `folder`."""
    models = {}
    for model_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        info = read_json(model_dir / "model.json") or {}
        runs = {f.stem: read_results(f) for f in sorted(model_dir.glob("*.jsonl"))}
        runs = {k: v for k, v in runs.items() if v}
        if runs:
            models[model_dir.name] = {"info": info, "runs": runs}
    baseline = next(
        (m for m, v in models.items() if v["info"].get("variant") == BASELINE[0] and BASELINE[1] in v["runs"]), None
    )
    summary = {}
    for name, model in models.items():
        any_rows = next(iter(model["runs"].values()))
        labelled = [r for r in any_rows if r.get("target") is not None]
        entry = {"info": model["info"], "frames": len(any_rows), "methods": {}}
        if labelled:
            errors = steering_errors([r["prediction"] for r in labelled], [r["target"] for r in labelled])
            entry["rmse"], entry["mae"] = errors["rmse"], errors["mae"]
        shifts = [r["uniform_shift"] for r in any_rows if "uniform_shift" in r]
        if shifts:
            entry["uniform_shift"] = bootstrap_mean(np.array(shifts))
        for method, rows in model["runs"].items():
            deletion = _by_frame(rows, "deletion_auc")
            stats = {"frames": len(rows), "deletion_auc": bootstrap_mean(np.array(list(deletion.values())))}
            for key in ("insertion_auc", "road_morf_auc", "road_lerf_auc"):
                if any(key in r for r in rows):
                    stats[key] = bootstrap_mean(np.array(list(_by_frame(rows, key).values())))
            morf, lerf = _by_frame(rows, "road_morf_auc"), _by_frame(rows, "road_lerf_auc")
            if morf and lerf:  # ROAD's own floor: the same map's least relevant pixels first
                stats["road_morf_over_lerf"] = bootstrap_ratio(*_paired(morf, lerf))
            for key, prefix in (("deletion_auc", "vs"), ("road_morf_auc", "road_vs")):
                mine = _by_frame(rows, key)
                if not mine:
                    continue
                random_rows = _by_frame(model["runs"].get("random", []), key)
                if random_rows and method != "random":
                    stats[f"{prefix}_random"] = bootstrap_ratio(*_paired(mine, random_rows))
                if baseline:
                    base_rows = _by_frame(models[baseline]["runs"][BASELINE[1]], key)
                    stats[f"{prefix}_kim_canny"] = bootstrap_ratio(*_paired(mine, base_rows)) if base_rows else None
            sanity = read_sanity(folder / name / f"{method}.sanity.json")
            if sanity:
                stats["sanity_by_stage"] = sanity
                stats["sanity_rho"] = list(sanity.values())[-1]
                uniform = read_sanity_uniform(folder / name / f"{method}.sanity.json")
                if uniform:
                    stats["sanity_uniform"] = list(uniform.values())[-1]
            hits = [r["pointing_hit"] for r in rows if "pointing_hit" in r]
            if hits:
                stats["pointing"] = float(np.mean(hits))
                ratios = [r["mask_mass_ratio"] for r in rows if r.get("mask_mass_ratio") == r.get("mask_mass_ratio")]
                stats["mask_mass_ratio"] = bootstrap_mean(np.array(ratios)) if ratios else None
            for key in ("deletion", "road_morf", "road_lerf", "insertion"):
                if key in rows[0]:
                    stats[f"{key}_curve"] = np.mean([r[key] for r in rows], axis=0).tolist()
            entry["methods"][method] = stats
        summary[name] = entry
    return {"baseline": baseline, "models": summary}


def read_sanity(path: Path) -> dict[str, float]:
    """{stage: mean rho over frames} from a .sanity.json, in cascade order; {} if there is none."""
    data = read_json(path)
    return {stage: float(np.mean(values)) for stage, values in data["stages"].items()} if data else {}


def read_sanity_uniform(path: Path) -> dict[str, float]:
    """{stage: share of frames whose randomized map came out uniform (rho 0 by convention)}; {} if none."""
    data = read_json(path)
    return {stage: count / data["frames"] for stage, count in data.get("uniform_maps", {}).items()} if data else {}


def _ci(value: tuple | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    mean, low, high = value
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown_table(results: dict) -> str:
    lines = [
        "| model | method | frames | deletion AUC ↑ | deletion / random | deletion / kim_canny attention "
        "| ROAD MoRF AUC ↑ | ROAD LeRF AUC ↓ | ROAD MoRF / LeRF | ROAD MoRF / kim_canny attention "
        "| insertion AUC ↓ | sanity ρ ↓ | uniform-attention shift | pointing | mass on mask (× area) | RMSE | MAE |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    nan = float("nan")
    for name, model in results["models"].items():
        for method, s in model["methods"].items():
            pointing = f"{s['pointing']:.2f}" if "pointing" in s else "–"
            rho = f"{s['sanity_rho']:.2f}" if "sanity_rho" in s else "–"
            if s.get("sanity_uniform"):
                rho += f" ({s['sanity_uniform']:.0%} uniform)"
            lines.append(
                f"| {name} | {method} | {s['frames']} | {_ci(s['deletion_auc'])} | {_ci(s.get('vs_random'), 2)} | "
                f"{_ci(s.get('vs_kim_canny'), 2)} | {_ci(s.get('road_morf_auc'))} | {_ci(s.get('road_lerf_auc'))} | "
                f"{_ci(s.get('road_morf_over_lerf'), 2)} | {_ci(s.get('road_vs_kim_canny'), 2)} | "
                f"{_ci(s.get('insertion_auc'))} | {rho} | {_ci(model.get('uniform_shift'))} | {pointing} | "
                f"{_ci(s.get('mask_mass_ratio'), 2)} | {model.get('rmse', nan):.4f} | {model.get('mae', nan):.4f} |"
            )
    return "\n".join(lines) + "\n"


def plot_curves(results: dict, out: Path) -> Path:
    panels = [
        ("deletion_curve", "deletion onto the substrate, most salient first (higher = more faithful)"),
        ("road_morf_curve", "ROAD, most relevant first (higher = more faithful)"),
        ("road_lerf_curve", "ROAD, least relevant first (lower = more faithful)"),
        ("insertion_curve", "insertion from the blurred image (lower = more faithful)"),
    ]
    fig = Figure(figsize=(12, 9))
    axes = list(fig.subplots(2, 2).flat)
    for name, model in results["models"].items():
        for method, s in model["methods"].items():
            color = None
            for ax, (key, _) in zip(axes, panels):
                if key in s:
                    steps = np.linspace(0, 1, len(s[key]))
                    (line,) = ax.plot(steps, s[key], label=f"{name} / {method}", color=color)
                    color = line.get_color()
    return finish_curves(fig, axes, [title for _, title in panels], "|y(x_k) - y(x_0)|", out)


def finish_curves(fig: Figure, axes: list, titles: list[str], ylabel: str, out: Path) -> Path:
    """Title, axis labels and grid on each curve panel, the legend on the first; the figure saved to `out`."""
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("fraction of pixels")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out)


def plot_overlays(rows: list[tuple[str, np.ndarray, list[tuple[str, np.ndarray]]]], out: Path) -> Path:
    """One row per frame: (title, RGB image, [(panel title, saliency map at the image's size), ...])."""
    columns = 1 + max(len(panels) for _, _, panels in rows)
    fig = Figure(figsize=(2.6 * columns, 1.6 * len(rows)))
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for row, (title, rgb, panels) in enumerate(rows):
        axes[row, 0].imshow(rgb)
        axes[row, 0].set_title(title, fontsize=7)
        for col, (label, heat) in enumerate(panels, start=1):
            axes[row, col].imshow(overlay(rgb, heat, alpha=0.7))
            axes[row, col].set_title(label, fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, out)
    return out


def write_report(folder: Path) -> dict:
    """results.json, table.md and curves.png in `folder`, from what is there now."""
    results = aggregate(folder)
    write_json(folder / "results.json", results)
    write_text(folder / "table.md", markdown_table(results))
    if results["models"]:
        plot_curves(results, folder / "curves.png")
    return results
