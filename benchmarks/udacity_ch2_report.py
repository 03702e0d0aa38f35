"""The real-frame benchmark's table and pictures: attention of each model on camera frames, deletion curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from benchmarks.headline_report import plot_curves as plot_headline_curves
from qattn_ros.core.atomic import save_figure
from qattn_ros.data.sources import open_source
from qattn_ros.data.time_blocks import TimeBlocks, split_rows
from qattn_ros.explain.overlay import overlay, to_camera
from qattn_ros.inference.predictor import SteeringPredictor


def plot_curves(out: Path, names: list[str], seeds: range, figure: Path) -> None:
    plot_headline_curves(out, {name: list(seeds) for name in names}, figure, "|steering change| (dataset unit)")


def plot_attention(
    out: Path, models: list[str], spec: dict, blocks: TimeBlocks, stamps: np.ndarray, figure: Path, count: int = 4
) -> Path:
    """`count` camera frames of the test block, evenly spaced, each with every model's attention (seed 0)."""
    predictors = {name: SteeringPredictor(out / "models" / f"{name}_s0" / "best", "cpu") for name in models}
    test = split_rows(stamps, blocks)["test"]
    wanted = set(stamps[test[np.linspace(0, len(test) - 1, count + 2).astype(int)[1:-1]]].tolist())
    records = [r for r in open_source(spec) if r.stamp_ns in wanted]  # full-size camera frames
    fig = Figure(figsize=(3.2 * (1 + len(predictors)), 2.6 * len(records)))
    axes = fig.subplots(len(records), 1 + len(predictors), squeeze=False)
    for row, record in enumerate(records):
        image = record.image
        axes[row, 0].imshow(image)
        axes[row, 0].set_title(f"t = {(record.stamp_ns - stamps[0]) / 1e9:.1f} s, steering {record.steering:+.3f}",
                               fontsize=8)  # fmt: skip
        for col, (name, predictor) in enumerate(predictors.items(), start=1):
            prediction = predictor.predict(image)
            heat = to_camera(prediction.attention, *image.shape[:2], predictor.preprocessing)
            axes[row, col].imshow(overlay(image, heat, alpha=0.7))
            axes[row, col].set_title(f"{name} attention, predicted {prediction.steering:+.3f}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("Real frames of the held-out test block; attention over the cropped model input (seed 0)")
    fig.tight_layout()
    return save_figure(fig, figure)


def markdown_table(table: dict, split: dict) -> str:
    """Per model: accuracy, then each faithfulness figure normalized by its own floor and raw, × kim_canny."""

    def ratio(row: dict, key: str, digits: int = 4) -> str:
        if key not in row:
            return "–"
        r = row[key]
        low, high = r["vs_kim_canny_ci"]
        return f"{r['mean']:.{digits}f} · ×{r['vs_kim_canny']:.2f} [{low:.2f}, {high:.2f}]"

    test = split["per_block"]["test"]
    lines = [
        f"Test block: {test['frames']} frames ({test['duration_s']} s); predicting the training mean: RMSE "
        f"{test['train_mean_rmse']:.4f} ({split['unit']}).",
        "",
        "| model | seeds | test RMSE (× kim_canny) | deletion / random ↑ (× kim_canny [95 % CI]) | ROAD MoRF / LeRF ↑ "
        "| deletion AUC (raw) ↑ | ROAD MoRF (raw) ↑ | insertion ↓ | sanity ρ ↓ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in table.items():
        att = entry["methods"]["attention"]
        rho = f"{att['sanity_rho']:.2f}" if "sanity_rho" in att else "–"
        lines.append(
            f"| {name} | {entry['seeds']} | {entry['rmse_mean']:.4f} ({entry['rmse_ratio']:.2f}) "
            f"| {ratio(att, 'deletion_over_random', 2)} | {ratio(att, 'road_morf_over_lerf', 2)} "
            f"| {ratio(att, 'deletion_auc')} | {ratio(att, 'road_morf_auc')} | {ratio(att, 'insertion_auc')} | {rho} |"
        )
    return "\n".join(lines) + "\n"
