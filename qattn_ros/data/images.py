"""Decoding image files to RGB uint8 with a clear error."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..core.errors import DataError


def read_rgb(path: Path) -> np.ndarray:
    """The image at `path` as (H, W, 3) RGB uint8; DataError if missing or undecodable."""
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise DataError(f"image not found: {path}")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DataError(f"cannot decode image: {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: Path) -> np.ndarray | None:
    """A relevance mask PNG (non-zero = relevant) as bool, or None if absent."""
    if not path.is_file():
        return None
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DataError(f"cannot decode mask: {path}")
    return mask > 0


def write_rgb(path: Path, rgb: np.ndarray, quality: int = 95) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise DataError(f"cannot write image: {path}")


def write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), mask.astype(np.uint8) * 255)


def message_to_rgb(msg: object) -> np.ndarray:
    """A sensor_msgs Image or CompressedImage (rosbags or rclpy) -> (H, W, 3) RGB uint8.

    Decoding is rosbags-image's; any failure becomes a DataError that says what was wrong.
    """
    from rosbags.image import ImageConversionError, message_to_cvimage

    encoding = getattr(msg, "format", None) or getattr(msg, "encoding", "?")
    try:
        image = message_to_cvimage(msg, "rgb8")
    except (AssertionError, ImageConversionError, ValueError, TypeError, KeyError, cv2.error) as error:
        raise DataError(f"cannot decode {type(msg).__name__} ({encoding}): {error or 'corrupt data'}") from None
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) == 0:
        raise DataError(f"cannot decode {type(msg).__name__} ({encoding}): got array {image.shape} {image.dtype}")
    return np.ascontiguousarray(image)
