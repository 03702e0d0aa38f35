"""Steering accuracy: the one RMSE / MAE used by training, evaluation, the demo and benchmarks."""

from __future__ import annotations

import numpy as np


def steering_errors(predicted, target) -> dict:
    """{"rmse", "mae", "frames"} of predictions against targets (same unit); NaN for no frames."""
    error = np.asarray(predicted, np.float64) - np.asarray(target, np.float64)
    if error.size == 0:
        return {"rmse": float("nan"), "mae": float("nan"), "frames": 0}
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error))), "frames": int(error.size)}
