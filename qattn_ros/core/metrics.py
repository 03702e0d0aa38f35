"""Steering accuracy: the one RMSE / MAE used by training, evaluation, the demo and benchmarks; how steady
validation was late in training."""

from __future__ import annotations

import numpy as np


def steering_errors(predicted, target) -> dict:
    """{"rmse", "mae", "frames"} of predictions against targets (same unit); NaN for no frames."""
    error = np.asarray(predicted, np.float64) - np.asarray(target, np.float64)
    if error.size == 0:
        return {"rmse": float("nan"), "mae": float("nan"), "frames": 0}
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error))), "frames": int(error.size)}


def late_swing(history: list[dict], after: int = 3) -> float:
    """Largest relative change of the validation RMSE between consecutive epochs after epoch `after`."""
    values = [h["val_rmse"] for h in history]
    return max((abs(b - a) / a for a, b in zip(values[after - 1 : -1], values[after:])), default=0.0)
