"""Noisy linear imputation for ROAD (Rong et al., "A Consistent and Efficient Evaluation Strategy
for Attribution Methods", ICML 2022).

Deleting pixels onto a constant leaks the shape of the deleted region: a map can score by where
it deletes rather than what it deletes. ROAD fills every removed pixel with the weighted mean of
its 8 neighbours (weight 1/6 across an edge, 1/12 across a corner; known neighbours are data,
removed ones unknowns), one sparse linear system per image and removal mask, then adds Gaussian
noise (std 0.01 of the normalized input) to the filled pixels. The same equations as
`pytorch_grad_cam.metrics.road.NoisyLinearImputer`, which the tests check this against;
written here so the evaluation does not depend on grad-cam and its OpenCV pin.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import spsolve

# (row offset, column offset, weight): 4 edge neighbours and 4 corner neighbours, summing to 1
NEIGHBOURS = tuple(
    (dr, dc, 1 / 6 if dr == 0 or dc == 0 else 1 / 12) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc
)
DEFAULT_NOISE = 0.01


def linear_fill(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """image (C, H, W) with the pixels where `removed` (H, W) is True filled by the neighbour-mean system.

    Every removed pixel i solves  S_i x_i - sum_{removed j} w_ij x_j = sum_{known j} w_ij v_j,  with S_i
    the weight of its in-image neighbours. With no known pixel at all the system is singular: the
    frame is filled with 0 (the dataset mean after normalization).
    """
    channels, height, width = image.shape
    out = np.array(image, dtype=np.float64, copy=True)
    if not removed.any():
        return out
    if removed.all():
        out[:] = 0.0
        return out
    flat = removed.ravel()
    unknown = np.flatnonzero(flat)
    index = np.full(flat.size, -1, dtype=np.int64)
    index[unknown] = np.arange(len(unknown))
    rows, cols = np.divmod(unknown, width)
    values = out.reshape(channels, -1)
    diagonal = np.zeros(len(unknown))
    rhs = np.zeros((len(unknown), channels))
    a_rows, a_cols, a_vals = [], [], []
    for dr, dc, weight in NEIGHBOURS:
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        eq = np.flatnonzero(inside)
        neighbour = r[eq] * width + c[eq]
        diagonal[eq] += weight
        known = ~flat[neighbour]
        rhs[eq[known]] += weight * values[:, neighbour[known]].T
        a_rows.append(eq[~known])
        a_cols.append(index[neighbour[~known]])
        a_vals.append(np.full(int((~known).sum()), -weight))
    n = len(unknown)
    a_rows.append(np.arange(n))
    a_cols.append(np.arange(n))
    a_vals.append(diagonal)
    system = csc_matrix((np.concatenate(a_vals), (np.concatenate(a_rows), np.concatenate(a_cols))), shape=(n, n))
    # the system is symmetric: minimum degree on A^T + A solves it ~1.5x faster than the default COLAMD
    solution = np.asarray(spsolve(system, rhs, permc_spec="MMD_AT_PLUS_A")).reshape(n, channels)
    values[:, unknown] = solution.T
    return out


def noisy_linear_fill(image: np.ndarray, removed: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """`linear_fill` plus N(0, noise^2) on the filled pixels (ROAD's noisy linear imputation)."""
    out = linear_fill(image, removed)
    out[:, removed] += noise * rng.standard_normal((image.shape[0], int(removed.sum())))
    return out
