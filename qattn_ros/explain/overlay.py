"""Attention maps at camera resolution and heat-map overlays on camera frames."""

from __future__ import annotations

import cv2
import numpy as np

from ..preprocess import Preprocessing

COLORMAPS = {"jet": cv2.COLORMAP_JET, "inferno": cv2.COLORMAP_INFERNO, "turbo": cv2.COLORMAP_TURBO,
             "viridis": cv2.COLORMAP_VIRIDIS, "hot": cv2.COLORMAP_HOT}  # fmt: skip


def heat_in_box(attention: np.ndarray, height: int, width: int, preprocessing: Preprocessing):
    """((top, bottom, left, right), map resized onto that box) for a camera frame of height x width.

    The box is the part of the frame the model sees (after cropping); outside it attention is 0.
    """
    top, bottom, left, right = preprocessing.model_box(height, width)
    heat = cv2.resize(attention.astype(np.float32), (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
    return (top, bottom, left, right), heat


def to_camera(attention: np.ndarray, height: int, width: int, preprocessing: Preprocessing) -> np.ndarray:
    """An (h, w) map over the model input -> (height, width) float32 over the camera frame, 0 where cropped."""
    (top, bottom, left, right), heat = heat_in_box(attention, height, width, preprocessing)
    full = np.zeros((height, width), np.float32)
    full[top:bottom, left:right] = heat
    return full


def overlay(
    image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, colormap: str = "jet", bgr: bool = False
) -> np.ndarray:
    """Blend a colour-mapped heat map onto a uint8 frame (RGB, or BGR with `bgr`), weighted by the heat.

    Where the (max-normalized) heat is 0 the frame is unchanged; where it is largest the
    colour map covers `alpha` of the pixel.
    """
    peak = float(heat.max())
    weight = np.clip(heat / peak, 0, 1).astype(np.float32) if peak > 0 else np.zeros(heat.shape, np.float32)
    coloured = cv2.applyColorMap((weight * 255).astype(np.uint8), COLORMAPS[colormap])  # BGR
    if not bgr:
        coloured = cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB)
    mix = alpha * weight
    return cv2.blendLinear(np.ascontiguousarray(image), coloured, 1.0 - mix, mix)
