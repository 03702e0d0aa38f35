"""Does the more faithful attention drive more robustly? Faithfulness against robustness over checkpoints.

Faithfulness of a checkpoint: its attention's deletion AUC over the random order's (higher:
the map points at what moves the steering). Robustness: its mean autonomy over every level of
the swept axes (the area under its autonomy curves; a breaking point alone is too coarse with
five levels). Spearman's rank correlation over the checkpoints, with the exact permutation
p-value where there are few of them.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .sweep import PURSUIT, SweepResult


def robustness(result: SweepResult, driver: str) -> float:
    """Mean autonomy of `driver` over all levels of all swept axes."""
    return float(np.mean([level[driver]["autonomy"] for axis in result.sweep.values() for level in axis.values()]))


def correlate(result: SweepResult, ratios: dict[str, float]) -> dict:
    """Per checkpoint: deletion ratio, robustness, breaking points; Spearman rho (and p) over checkpoints."""
    names = [name for name in ratios if name != PURSUIT]
    faithful = np.array([ratios[name] for name in names])
    robust = np.array([robustness(result, name) for name in names])
    per_model = {name: {"deletion_ratio": float(f), "robustness": float(r),
                        "breaking_point": {axis: result.breaking_point[axis][name] for axis in result.breaking_point}}
                 for name, f, r in zip(names, faithful, robust, strict=True)}  # fmt: skip
    out = {"models": len(names), "axes": list(result.sweep), "tracks_per_level": result.tracks_per_level,
           "per_model": per_model, "pursuit_robustness": robustness(result, PURSUIT)}  # fmt: skip
    if len(names) < 3 or np.ptp(robust) == 0 or np.ptp(faithful) == 0:
        return {**out, "spearman_rho": None, "p_value": None, "note": "too few checkpoints (or no spread) to correlate"}
    test = stats.spearmanr(faithful, robust)
    exact = stats.permutation_test((faithful,), lambda x: stats.spearmanr(x, robust)[0],
                                   permutation_type="pairings", n_resamples=20000, random_state=0)  # fmt: skip
    return {**out, "spearman_rho": float(test[0]), "p_value": float(exact.pvalue)}
