"""The steering node's attention outputs as sensor_msgs/Image: the raw map and the overlay on the frame."""

from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import Image

from ..core.preprocess import Box
from ..explain.overlay import overlay
from .messages import fill_image


class AttentionImages:
    """Builds attention/map (32FC1) and attention/overlay (bgr8, camera size, or scaled down to `max_width`) for one
    frame at a time. A 1280x720 overlay cost as much as the model's forward pass and 2.7 MB a message; at 640 px
    wide it is a quarter of both, and RViz shows it the same.

    Publishing copies the message, so one overlay buffer serves every frame while the camera
    size stays; a fresh 1 MB array per frame costs more in page faults than the blending itself.
    """

    def __init__(self) -> None:
        self._overlay: Image | None = None

    def build(self, header, rgb: np.ndarray, attention: np.ndarray | None, box: Box, alpha: float, colormap: str | None,
              max_width: int = 0) -> list[tuple[str, Image]]:  # fmt: skip
        """(output name, message) of the map and, unless `colormap` is None, the overlay; `box`: what the model saw;
        `max_width` > 0: a wider frame's overlay is scaled down to it."""
        if attention is None:
            return []
        images = [("map", fill_image(Image(), header, attention.astype(np.float32), "32FC1"))]
        if colormap is not None:
            height, width = rgb.shape[:2]
            if 0 < max_width < width:
                scale = max_width / width
                size = (max_width, max(1, round(height * scale)))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
                box = tuple(round(v * scale) for v in box)
            message, bgr = self._overlay_buffer(header, *rgb.shape[:2])
            cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=bgr)
            top, bottom, left, right = box
            # outside the model's box the attention is 0: only the box is blended, the map stretched onto it
            inside = bgr[top:bottom, left:right]
            overlay(inside, attention, alpha, colormap, bgr=True, out=inside)
            images.append(("overlay", message))
        return images

    def _overlay_buffer(self, header, height: int, width: int) -> tuple[Image, np.ndarray]:
        """The overlay message and an (H, W, 3) view of its data."""
        if self._overlay is None or (self._overlay.height, self._overlay.width) != (height, width):
            self._overlay = fill_image(Image(), header, np.zeros((height, width, 3), np.uint8), "bgr8")
        self._overlay.header = header
        return self._overlay, np.frombuffer(self._overlay.data, np.uint8).reshape(height, width, 3)
