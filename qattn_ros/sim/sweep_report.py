"""Sweep reports: autonomy against each difficulty axis (a plot), the per-level table and the breaking points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..core.atomic import save_figure
from .sweep import BREAKING_AUTONOMY, PURSUIT, SweepResult


def plot_sweep(result: SweepResult, out: Path) -> Path:
    """Autonomy against each axis, every driver on it, the spread over tracks shaded, 99 % dashed."""
    axes_names = list(result.sweep)
    cols = min(3, len(axes_names))
    rows = -(-len(axes_names) // cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows))
    panels = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, name in zip(panels, axes_names, strict=False):
        values = result.axes[name]["levels"]
        levels = list(result.sweep[name].values())
        for driver in levels[0]:
            mean = np.array([100 * lv[driver]["autonomy"] for lv in levels])
            sd = np.array([100 * lv[driver]["autonomy_sd"] for lv in levels])
            style = {"color": "black", "ls": "--"} if driver == PURSUIT else {}
            (line,) = ax.plot(values, mean, marker="o", ms=4, label=driver, **style)
            ax.fill_between(values, np.clip(mean - sd, 0, 100), np.clip(mean + sd, 0, 100), alpha=0.12,
                            color=line.get_color())  # fmt: skip
        ax.axhline(100 * BREAKING_AUTONOMY, color="red", lw=0.7, ls=":")
        ax.set_ylim(-3, 103)
        ax.set_xlabel(result.axes[name]["label"], fontsize=8)
        ax.set_ylabel("autonomy (%)")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in panels[len(axes_names) :]:
        ax.axis("off")
    panels[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"autonomy vs difficulty ({result.tracks_per_level} held-out tracks x {result.track_length_m:.0f} m "
                 "per level; band: sd over tracks; dotted: 99 %)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return save_figure(fig, out)


def sweep_table(result: SweepResult) -> str:
    """Markdown: per axis and level, each driver's autonomy (sd over tracks) and interventions/km; breaking points."""
    drivers = list(next(iter(next(iter(result.sweep.values())).values())))
    rows = ["| axis | level | " + " | ".join(f"{d}: autonomy % (sd) · int/km · p95 \\|offset\\| m" for d in drivers)
            + " |", "|---|---|" + "---|" * len(drivers)]  # fmt: skip
    for name, levels in result.sweep.items():
        for value, by_driver in levels.items():
            cells = [f"{100 * f['autonomy']:.0f} ({100 * f['autonomy_sd']:.0f}) · {f['interventions_per_km']:.1f} · "
                     f"{f['p95_abs_offset_m']:.2f}" for f in by_driver.values()]  # fmt: skip
            rows.append(f"| {name} | {value} | " + " | ".join(cells) + " |")
    rows += ["", "| breaking point (first level < 99 %) | " + " | ".join(drivers) + " |",
             "|---|" + "---|" * len(drivers)]  # fmt: skip
    for name, by_driver in result.breaking_point.items():
        rows.append(f"| {name} | " + " | ".join("none" if v is None else f"{v:.4g}" for v in by_driver.values()) + " |")
    return "\n".join(rows) + "\n"
