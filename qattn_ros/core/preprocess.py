"""Image preprocessing shared by training, evaluation and the node (one code path).

Camera RGB uint8 -> crop sky/hood rows -> resize to the model input -> colour space
(uint8, what the cache stores) -> float normalized with the training set's mean/std
(so the dataset mean is 0, the deletion substrate).

Camera geometry: resizing squashes whatever aspect comes in into the model box, so a model
trained on 2:1 frames sees a 4:3 camera distorted (the demo model's RMSE went from 0.011 to
0.071, silently). A checkpoint records the frames it was trained on (`CameraGeometry`), and
`fit_frame` maps an incoming frame onto them: by default a crop to the trained aspect (a view,
before the resize), or the old squash; a frame that cannot be mapped is a mismatch that the
caller refuses or, when told to, accepts out loud.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import cached_property

import cv2
import numpy as np
import torch

from .config_mapping import from_mapping
from .errors import ConfigError

COLOR_SPACES = {"rgb": None, "yuv": cv2.COLOR_RGB2YUV, "hsv": cv2.COLOR_RGB2HSV_FULL}
BACK_TO_RGB = {"rgb": None, "yuv": cv2.COLOR_YUV2RGB, "hsv": cv2.COLOR_HSV2RGB_FULL}
# Channels that carry brightness in each colour space (for brightness augmentation).
BRIGHTNESS_CHANNELS = {"rgb": (0, 1, 2), "yuv": (0,), "hsv": (2,)}
CAMERA_FITS = ("crop", "squash")  # how a frame of another aspect is mapped onto the trained geometry
ASPECT_TOLERANCE = 0.01  # relative: 640x480 and 639x480 are the same camera
MIN_KEPT = 0.5  # a crop to the trained aspect that keeps less of the frame is not the camera trained for


@dataclass
class Preprocessing:
    crop_top: float = 0.3  # fraction of image height removed from the top (sky)
    crop_bottom: float = 0.0  # fraction removed from the bottom (hood)
    height: int = 80
    width: int = 160
    color: str = "yuv"
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.25, 0.25, 0.25])

    def __post_init__(self) -> None:
        if self.color not in COLOR_SPACES:
            raise ConfigError(
                f"preprocessing.color: unknown colour space {self.color!r}; expected one of {', '.join(COLOR_SPACES)}"
            )
        if not (0 <= self.crop_top < 1 and 0 <= self.crop_bottom < 1 and self.crop_top + self.crop_bottom < 1):
            raise ConfigError(
                f"preprocessing.crop_top/crop_bottom: fractions must leave rows ({self.crop_top}, {self.crop_bottom})"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("preprocessing.mean/std: need three values each, std > 0")

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        return from_mapping(cls, data, "preprocessing")

    def to_dict(self) -> dict:
        return asdict(self)

    def cache_key(self) -> dict:
        """What determines the cached uint8 images (normalization is applied later)."""
        return {k: v for k, v in self.to_dict().items() if k not in ("mean", "std")}

    def crop_rows(self, height: int) -> tuple[int, int]:
        top = int(round(self.crop_top * height))
        bottom = height - int(round(self.crop_bottom * height))
        return top, bottom

    def to_model_uint8(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) RGB uint8 camera frame -> (height, width, 3) uint8 in the model's colour space."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 2:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
        top, bottom = self.crop_rows(rgb.shape[0])
        resized = cv2.resize(rgb[top:bottom], (self.width, self.height), interpolation=cv2.INTER_AREA)
        code = COLOR_SPACES[self.color]
        return resized if code is None else cv2.cvtColor(resized, code)

    def to_rgb(self, model_uint8: np.ndarray) -> np.ndarray:
        """A model-resolution uint8 image back to RGB, for display."""
        code = BACK_TO_RGB[self.color]
        return model_uint8 if code is None else cv2.cvtColor(np.ascontiguousarray(model_uint8), code)

    def normalize(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 tensor -> (B, 3, H, W) float, dataset mean at 0."""
        return self.standardize(self.to_unit(batch_uint8))

    @staticmethod
    def to_unit(batch_uint8: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1] (where augmentation works)."""
        return batch_uint8.permute(0, 3, 1, 2).float().div_(255.0)

    def normalize_frames(self, batch_uint8: np.ndarray) -> torch.Tensor:
        """`normalize` on the CPU in one table look-up per value (cv2.LUT): the same floats, a third of the time.

        Each output depends only on a byte and its channel, so 3 x 256 values computed once by
        `normalize` itself replace its per-frame uint8 -> float -> /255 -> -mean -> /std passes.
        """
        batch = np.ascontiguousarray(batch_uint8)
        values = cv2.LUT(batch.reshape(-1, *batch.shape[2:]), self._normalized_bytes)
        return torch.from_numpy(values.reshape(batch.shape)).permute(0, 3, 1, 2)

    @cached_property
    def _normalized_bytes(self) -> np.ndarray:
        """(1, 256, 3) float32: normalize() of each byte value in each channel."""
        every_byte = torch.arange(256, dtype=torch.uint8).view(1, 1, 256, 1).expand(1, 1, 256, 3)
        return self.normalize(every_byte.contiguous())[0, :, 0].T.contiguous().numpy()[None]

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> the model input, dataset mean at 0."""
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def model_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) of the camera frame the model sees, for mapping maps back."""
        top, bottom = self.crop_rows(height)
        return top, bottom, 0, width


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] of (N, H, W, 3) uint8 images."""
    x = images.reshape(-1, 3).astype(np.float64) / 255.0
    return x.mean(axis=0).tolist(), np.maximum(x.std(axis=0), 1e-3).tolist()


Box = tuple[int, int, int, int]  # (top, bottom, left, right) in pixels of a frame


@dataclass(frozen=True)
class CameraGeometry:
    """The frames a model was trained on: their size (hence aspect); the box the model saw is the crop of it."""

    width: int
    height: int

    def __post_init__(self) -> None:
        if not (isinstance(self.width, int) and isinstance(self.height, int) and self.width > 0 and self.height > 0):
            raise ConfigError(f"camera: width and height must be positive integers ({self.width}, {self.height})")

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def describe(self) -> str:
        return f"{self.width}x{self.height} ({self.aspect:.2f}:1)"

    def to_dict(self, preprocessing: Preprocessing) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "crop_box": list(preprocessing.model_box(self.height, self.width)),
        }

    @classmethod
    def from_dict(cls, data: dict, preprocessing: Preprocessing) -> CameraGeometry:
        if not isinstance(data, dict) or set(data) - {"width", "height", "crop_box"}:
            raise ConfigError(f"camera: expected a mapping of width, height and crop_box, got {data!r}")
        geometry = cls(data.get("width"), data.get("height"))
        box = list(preprocessing.model_box(geometry.height, geometry.width))
        if "crop_box" in data and list(data["crop_box"]) != box:
            raise ConfigError(f"camera.crop_box {data['crop_box']} disagrees with the preprocessing's crop {box}")
        return geometry

    @classmethod
    def of_model_input(cls, preprocessing: Preprocessing) -> CameraGeometry:
        """The default when nothing was recorded: frames of the model input's aspect (resized undistorted)."""
        return cls(preprocessing.width, preprocessing.height)

    @classmethod
    def of_images(cls, images: Iterable[np.ndarray]) -> CameraGeometry | None:
        """The geometry of training frames (the first of each source), None when their aspects differ."""
        shapes = {image.shape[:2] for image in images}
        if not shapes:
            return None
        height, width = max(shapes)
        if any(abs(w * height / (h * width) - 1) > ASPECT_TOLERANCE for h, w in shapes):
            return None
        return cls(int(width), int(height))


@dataclass(frozen=True)
class FrameFit:
    box: Box  # the part of the frame that stands for a trained frame
    mismatch: str  # "" when the frame maps onto the trained geometry; else what is wrong, for the user


def fit_frame(height: int, width: int, trained: CameraGeometry, mode: str = "crop", anchor: float = 0.5) -> FrameFit:
    """How a (height, width) frame maps onto the trained geometry.

    crop: the largest box of the trained aspect, centred across and at `anchor` (0 top, 1 bottom)
    down; one that keeps under MIN_KEPT of the frame is a mismatch. squash: the whole frame; a
    mismatch when the aspect differs (the model then sees a distorted scene).
    """
    if mode not in CAMERA_FITS:
        raise ConfigError(f"camera fit {mode!r}: expected one of {', '.join(CAMERA_FITS)}")
    whole = (0, height, 0, width)
    if abs(width / height / trained.aspect - 1) <= ASPECT_TOLERANCE:
        return FrameFit(whole, "")
    seen = CameraGeometry(width, height).describe()
    if mode == "squash":
        return FrameFit(whole, f"a {seen} camera frame is squashed into the trained {trained.describe()} geometry")
    if width / height < trained.aspect:  # taller: keep full width, fewer rows
        rows = max(1, round(width / trained.aspect))
        top = round(anchor * (height - rows))
        box = (top, top + rows, 0, width)
    else:  # wider: keep full height, fewer columns, centred
        columns = max(1, round(height * trained.aspect))
        left = (width - columns) // 2
        box = (0, height, left, left + columns)
    kept = (box[1] - box[0]) * (box[3] - box[2]) / (height * width)
    if kept < MIN_KEPT:
        return FrameFit(box, f"a {seen} camera frame cropped to the trained {trained.describe()} geometry keeps only "
                             f"{kept:.0%} of it: not the camera this checkpoint was trained for")  # fmt: skip
    return FrameFit(box, "")
