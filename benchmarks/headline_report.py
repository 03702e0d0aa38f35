"""The headline's figures and table: the Pareto front, the mean deletion and ROAD curves, the Markdown table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from qattn_ros.core.atomic import save_figure
from qattn_ros.explain.engine import read_results
from qattn_ros.explain.report import finish_curves


def plot_pareto(points: list[dict], figure: Path) -> None:
    fig = Figure(figsize=(11, 4.5))
    for ax, key, label in zip(fig.subplots(1, 2), ("deletion", "road"),
                              ("deletion onto the mean", "ROAD most relevant first")):  # fmt: skip
        for p in points:
            low, high = p[f"{key}_ci"]
            value = p[f"{key}_ratio"]
            ax.errorbar(p["rmse_ratio"], value, yerr=[[value - low], [high - value]], fmt="o" if p["front"] else "x",
                        color="C3" if p["front"] else "C0", capsize=2)  # fmt: skip
            ax.annotate(p["name"].replace("quant_sign_", ""), (p["rmse_ratio"], value), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.axvline(1.05, color="gray", lw=0.8, ls="--")
        ax.set_xlabel("RMSE / kim_canny RMSE")
        ax.set_ylabel(f"attention AUC / kim_canny's ({label})")
        ax.grid(alpha=0.3)
    fig.suptitle("Pareto front (red: not dominated), bits x rest dropout; intervals over seeds and frames")
    fig.tight_layout()
    save_figure(fig, figure)


def plot_curves(
    out: Path, seeds: dict[str, list[int]], figure: Path, ylabel: str = "|steering change| (simulator units)"
) -> None:
    """Mean deletion and ROAD curves of each variant's attention (over seeds and frames); random order dashed."""
    fig = Figure(figsize=(12, 4.5))
    axes = fig.subplots(1, 2)
    for name, done in seeds.items():
        rows = {m: [] for m in ("attention", "random")}
        for seed, method in ((s, m) for s in done for m in rows):
            rows[method] += read_results(out / "models" / f"{name}_s{seed}" / "eval" / f"{method}.jsonl")
        color = None
        for ax, key in zip(axes, ("deletion", "road_morf")):
            for method, style in (("attention", "-"), ("random", "--")):
                curves = [r[key] for r in rows[method] if key in r]
                if curves:
                    steps = np.linspace(0, 1, len(curves[0]))
                    label = f"{name} {method}" if method == "attention" else None
                    (line,) = ax.plot(steps, np.mean(curves, axis=0), style, color=color, label=label,
                                      alpha=1.0 if method == "attention" else 0.5)  # fmt: skip
                    color = line.get_color()
    titles = ["deletion onto the mean, most attended first (dashed: random order)",
              "ROAD (noisy linear imputation), most relevant first"]  # fmt: skip
    finish_curves(fig, list(axes), titles, ylabel, figure)


def markdown_table(table: dict) -> str:
    """The headline table: every model x method, each measure with its interval over seeds (and frames)."""

    def ratio(row: dict, key: str) -> str:
        if key not in row:
            return "–"
        r = row[key]
        low, high = r["vs_kim_canny_ci"]
        return f"{r['mean']:.4f} · ×{r['vs_kim_canny']:.2f} [{low:.2f}, {high:.2f}]"

    def interval(value: float | None, ci: list[float] | None, digits: int = 2) -> str:
        if value is None:
            return "–"
        return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else f"{value:.{digits}f}"

    lines = [
        "| model | map | seeds | deletion onto the mean ↑ (AUC · × kim_canny [95 % CI]) | ROAD MoRF ↑ | ROAD LeRF ↓ "
        "| insertion ↓ | sanity ρ ↓ | uniform-attention shift / RMSE | mass on mask (× area) | pointing "
        "| RMSE [95 % CI over seeds] (× kim_canny) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in table.items():
        for method, row in entry["methods"].items():
            if method == "random":
                continue
            shift = f"{entry['uniform_shift_over_rmse']:.2f}" if method == "attention" else "–"
            rho = interval(row.get("sanity_rho"), row.get("sanity_rho_ci"))
            if row.get("sanity_uniform"):
                rho += f" ({row['sanity_uniform']:.0%} uniform)"
            lines.append(
                f"| {name} | {method} | {row['seeds']} | {ratio(row, 'deletion_auc')} | {ratio(row, 'road_morf_auc')} "
                f"| {ratio(row, 'road_lerf_auc')} | {ratio(row, 'insertion_auc')} "
                f"| {rho} | {shift} "
                f"| {interval(row['mask_mass_ratio'], row['mask_mass_ratio_ci'])} "
                f"| {interval(row['pointing'], row['pointing_ci'])} "
                f"| {interval(entry['rmse_mean'], entry['rmse_ci'], 4)} ({entry['rmse_ratio']:.2f}) |"
            )
    return "\n".join(lines) + "\n"
