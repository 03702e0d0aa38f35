"""Closed-loop reports: the track with the driven path, offset over distance, a camera + attention GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from ..core.atomic import atomic_path, save_figure, write_json, write_text
from .world import RoadSim


def plot_track(sims: dict[str, RoadSim], out: Path) -> Path:
    """The first road's centre line, the path each driver drove on it, and where it was put back."""
    fig = Figure(figsize=(7, 7))
    ax = fig.subplots()
    first = next(iter(sims.values()))
    _, x, y, _ = first.track.line
    ax.plot(x, y, color="0.7", lw=6, label="road")
    for name, sim in sims.items():
        (line,) = ax.plot(sim.log.x, sim.log.y, lw=1, label=f"{name} ({len(sim.log.interventions)} interventions)")
        for _, s in sim.log.interventions:
            px, py, _ = sim.track.pose(s, 0.0, 0.0)
            ax.plot(px, py, "x", color=line.get_color(), ms=8)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m, odom)")
    ax.set_ylabel("y (m, odom)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out)


def plot_offset(sims: dict[str, RoadSim], out: Path) -> Path:
    fig = Figure(figsize=(11, 3.5))
    ax = fig.subplots()
    for name, sim in sims.items():
        ax.plot(np.asarray(sim.log.distance) / 1000, sim.log.offset, lw=0.8, label=name)
    limit = next(iter(sims.values())).config.intervention_offset
    for sign in (-1, 1):
        ax.axhline(sign * limit, color="red", ls="--", lw=0.8)
    ax.set_xlabel("distance (km)")
    ax.set_ylabel("lateral offset (m, left +)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, out)


def write_gif(frames: list[np.ndarray], out: Path, fps: float) -> Path | None:
    if not frames:
        return None
    images = [Image.fromarray(frame) for frame in frames]
    with atomic_path(out) as tmp:
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return out


def write_summary(summaries: dict[str, dict], out: Path, meta: dict) -> str:
    write_json(out / "results.json", {"meta": meta, "drivers": summaries})
    rows = [
        "| driver | km | autonomy | interventions | mean abs offset (m) | max abs offset (m) | mean abs heading (rad) "
        "| steering jerk RMS (rad/s²) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        rows.append(f"| {name} | {s['km']:.2f} | {100 * s['autonomy']:.1f} % | {s['interventions']} | "
                    f"{s['mean_abs_offset_m']:.3f} | {s['max_abs_offset_m']:.2f} | {s['mean_abs_heading_rad']:.4f} | "
                    f"{s['steering_jerk_rms']:.2f} |")  # fmt: skip
    table = "\n".join(rows) + "\n"
    write_text(out / "table.md", table)
    return table
