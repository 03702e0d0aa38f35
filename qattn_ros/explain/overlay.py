"""Attention maps at camera resolution and heat-map overlays on camera frames."""

from __future__ import annotations

import cv2
import numpy as np

from ..core.preprocess import Preprocessing

COLORMAPS = {"jet": cv2.COLORMAP_JET, "inferno": cv2.COLORMAP_INFERNO, "turbo": cv2.COLORMAP_TURBO,
             "viridis": cv2.COLORMAP_VIRIDIS, "hot": cv2.COLORMAP_HOT}  # fmt: skip


def to_camera(attention: np.ndarray, height: int, width: int, preprocessing: Preprocessing) -> np.ndarray:
    """An (h, w) map over the model input -> (height, width) float32 over the camera frame, 0 where cropped."""
    top, bottom, left, right = preprocessing.model_box(height, width)
    full = np.zeros((height, width), np.float32)
    full[top:bottom, left:right] = cv2.resize(
        attention.astype(np.float32), (right - left, bottom - top), interpolation=cv2.INTER_LINEAR
    )
    return full


def overlay(
    image: np.ndarray,
    heat: np.ndarray,
    alpha: float = 0.5,
    colormap: str = "jet",
    bgr: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Blend a colour-mapped heat map onto a uint8 frame (RGB, or BGR with `bgr`), weighted by the heat.

    Where the (max-normalized) heat is 0 the frame is unchanged; where it is largest the
    colour map covers `alpha` of the pixel. A heat map smaller than the frame (the model's
    attention) is stretched over it bilinearly; the weights are computed at the map's size
    and resized, so a camera-sized frame costs a handful of passes (the node's hot path).
    `out` (may be `image` itself) receives the result instead of a new array.
    """
    peak = float(heat.max())
    weight = np.clip(heat / peak, 0, 1).astype(np.float32) if peak > 0 else np.zeros(heat.shape, np.float32)
    size = (image.shape[1], image.shape[0])
    stretch = (lambda m: m) if weight.shape == image.shape[:2] else (lambda m: cv2.resize(m, size))
    coloured = cv2.applyColorMap(cv2.convertScaleAbs(stretch(weight), alpha=255), COLORMAPS[colormap])  # BGR
    if not bgr:
        coloured = cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB)
    keep, mix = stretch(1 - alpha * weight), stretch(alpha * weight)
    return cv2.blendLinear(np.ascontiguousarray(image), coloured, keep, mix, dst=out)
