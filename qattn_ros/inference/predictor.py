"""The one way from a checkpoint to steering and attention, for every consumer.

The ROS node, offline evaluation, the demo, the benchmarks (and the replay evaluator and
simulator) all load a checkpoint through `SteeringPredictor`: it verifies and loads the
bundle, picks the device, preprocesses exactly as training did, keeps a recurrent model's
state across frames, converts the prediction to REP-103 with the geometry recorded in the
checkpoint, and reads a dataset at the checkpoint's preprocessing and steering unit.

A camera frame is first mapped onto the camera geometry the checkpoint was trained on
(`preprocess.fit_frame`: cropped to the trained aspect by default); a frame that cannot be
mapped raises `CameraMismatch` unless `accept_mismatch` is set, and then goes through as
fitted, the caller saying so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.device import pick_device
from ..core.errors import DataError
from ..core.preprocess import Box, CameraGeometry, FrameFit, Preprocessing, fit_frame
from ..core.units import to_wheel_angle
from ..data.cache import build_cache, fit_record, open_cache
from ..data.frames import FrameSet
from ..data.record import Source
from ..data.time_blocks import TimeBlocks, split_rows
from ..model.network import RecurrentState, SteeringOutput
from .backends import load_network
from .shipped import resolve as resolve_shipped


@dataclass
class Prediction:
    steering: float  # checkpoint unit
    wheel_angle: float  # front-wheel angle, rad, positive left (REP-103)
    attention: np.ndarray | None  # (h, w) over the model input, sums to 1


class CameraMismatch(DataError):
    """A camera frame that does not map onto the checkpoint's camera geometry; the message says how."""


@dataclass
class Frames:
    """Frames of a dataset at a checkpoint's preprocessing, labels in its steering unit."""

    images: np.ndarray  # (N, h, w, 3) uint8 in the model's colour space
    targets: np.ndarray  # (N,) float32
    masks: np.ndarray | None  # (N, h, w) uint8 relevance coverage, synthetic data only

    def __len__(self) -> int:
        return len(self.targets)


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """TF32 off for CUDA matmuls and cuDNN convolutions while inside (a no-op on the CPU).

    TF32 makes a quantized model's output depend on the batch size (its 10-bit mantissa
    flips quantizer codes), so the same frame would explain differently in a batch of 1024
    and alone. Inference here is tiny; exact float32 costs little.
    """
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


class SteeringPredictor:
    """A verified checkpoint on a device, ready for single frames (stateful) or batches."""

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "auto", backend: str = "torch") -> None:
        """`backend`: torch, or onnxruntime[:tensorrt] on the <name>.onnx qattn_export wrote (see backends)."""
        self.shipped = resolve_shipped(str(checkpoint))  # a shipped model's name, verified; None: a path
        checkpoint = self.shipped.checkpoint if self.shipped else checkpoint
        self.checkpoint = str(checkpoint)
        self.device = pick_device(device)
        self.backend = backend
        self.model, self.info = load_network(checkpoint, self.device, backend)
        self.state: RecurrentState | None = None
        self.camera = self.info.camera or CameraGeometry.of_model_input(self.info.preprocessing)
        self.fit_camera()

    @property
    def preprocessing(self) -> Preprocessing:
        return self.info.preprocessing

    @property
    def has_attention(self) -> bool:
        return self.info.model.has_attention

    def normalize(self, images_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, h, w, 3) uint8 at model resolution -> (B, 3, h, w) model input on the device."""
        if isinstance(images_uint8, np.ndarray):
            if self.device.type == "cpu":  # the node's hot path: the same floats by table look-up
                return self.preprocessing.normalize_frames(images_uint8)
            images_uint8 = torch.from_numpy(np.array(images_uint8))  # copy: cached frames are read-only memmaps
        return self.preprocessing.normalize(images_uint8.to(self.device))

    def forward(self, x: torch.Tensor, state: RecurrentState | None = None) -> SteeringOutput:
        """The network on normalized inputs, without gradients and in exact float32."""
        with torch.no_grad(), exact_float32():
            return self.model(x, state)

    def steering(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) steering for normalized inputs, each frame on its own (what deletion curves perturb)."""
        return self.forward(x).steering

    def predict_batch(self, images_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(B, h, w, 3) model-resolution uint8 -> steering (B,) and attention (B, h/8, w/8) or None."""
        out = self.forward(self.normalize(images_uint8))
        attention = out.attention.cpu().numpy() if out.attention is not None else None
        return out.steering.cpu().numpy(), attention

    def fit_camera(self, mode: str = "crop", anchor: float = 0.5, accept_mismatch: bool = False) -> None:
        """How camera frames are mapped onto the trained geometry (see `preprocess.fit_frame`)."""
        self.camera_fit = (mode, anchor)
        self.accept_mismatch = accept_mismatch
        self._fits: dict[tuple[int, int], FrameFit] = {}

    def fit(self, height: int, width: int) -> FrameFit:
        """The mapping of a (height, width) frame; CameraMismatch if it does not map and that is not accepted."""
        fit = self._fits.get((height, width))
        if fit is None:
            fit = self._fits[height, width] = fit_frame(height, width, self.camera, *self.camera_fit)
        if fit.mismatch and not self.accept_mismatch:
            raise CameraMismatch(f"{fit.mismatch} (checkpoint {self.checkpoint})")
        return fit

    def to_model_uint8(self, rgb: np.ndarray) -> np.ndarray:
        """A camera frame (H, W, 3) RGB uint8, fitted to the trained geometry, at model resolution."""
        if rgb.ndim != 3:  # not a camera frame: the preprocessing says why
            return self.preprocessing.to_model_uint8(rgb)
        top, bottom, left, right = self.fit(*rgb.shape[:2]).box
        return self.preprocessing.to_model_uint8(rgb[top:bottom, left:right])  # a view: nothing copied before resize

    def model_box(self, height: int, width: int) -> Box:
        """(top, bottom, left, right) of a camera frame that the model sees, for mapping maps back onto it."""
        top, bottom, left, right = self.fit(height, width).box
        box_top, box_bottom, _, _ = self.preprocessing.model_box(bottom - top, right - left)
        return top + box_top, top + box_bottom, left, right

    def predict(self, rgb: np.ndarray) -> Prediction:
        """One camera frame (H, W, 3) RGB uint8; a recurrent model keeps its state for the next frame."""
        out = self.forward(self.normalize(self.to_model_uint8(rgb)[None]), self.state)
        self.state = out.state
        value = float(out.steering[0])
        attention = out.attention[0].cpu().numpy() if out.attention is not None else None
        return Prediction(value, self.to_wheel_angle(value), attention)

    def to_wheel_angle(self, value: float) -> float:
        """A prediction in the checkpoint's unit -> front-wheel angle, rad, positive left."""
        info = self.info
        return to_wheel_angle(value, info.steering_unit, info.positive_is_left, info.vehicle)

    def reset(self) -> None:
        """Forget the recurrent state (a new sequence starts)."""
        self.state = None

    def frames(self, source: Source, cache_dir: str | Path, limit: int | None = None, cache: str | Path | None = None,
               block: str | None = None, blocks: TimeBlocks | None = None) -> Frames:  # fmt: skip
        """`limit` evenly spaced frames (all when None) of `source`, decoded once into the cache; with `block`
        ("train", "val" or "test") only that time block of the source (`data.time_blocks`).

        Frames of another aspect than the trained camera geometry are fitted onto it first as the node does
        (`fit_camera`: centred crop unless set), so offline figures are the node's. `cache`: a prebuilt cache
        entry to read instead; its preprocessing and camera fit must be this checkpoint's.
        """
        if cache is not None:
            cached = open_cache(Path(cache))
            if cached.meta["preprocessing"] != self.preprocessing.cache_key():
                raise DataError(f"cache {cache} was built with preprocessing {cached.meta['preprocessing']}, "
                                f"but {self.checkpoint} needs {self.preprocessing.cache_key()}")  # fmt: skip
            if "frame_sizes" not in cached.meta:
                raise DataError(f"cache {cache} was built by an older version (no frame sizes recorded): rebuild it")
            fitted = cached.meta["camera"] == fit_record(self.camera, self.camera_fit)
            if self._needs_fit(cached.meta["frame_sizes"]) and not fitted:
                raise DataError(f"cache {cache} holds frames of {cached.meta['frame_sizes']} (height, width) not "
                                f"fitted onto the checkpoint camera {self.camera.describe()}: rebuild it")  # fmt: skip
        else:
            cached = build_cache(source, self.preprocessing, cache_dir)
            if self._needs_fit(cached.meta["frame_sizes"]):
                cached = build_cache(source, self.preprocessing, cache_dir, camera=self.camera, fit=self.camera_fit)
        pool = np.arange(len(cached)) if block is None else split_rows(cached.stamps, blocks or TimeBlocks())[block]
        count = len(pool) if not limit else min(limit, len(pool))
        rows = pool[np.linspace(0, len(pool) - 1, count).astype(np.int64)] if count else np.zeros(0, np.int64)
        info = self.info
        frames = FrameSet([(cached, rows)], info.steering_unit, info.positive_is_left, info.vehicle)
        every = np.arange(len(frames))
        images, targets = frames.gather(every)
        return Frames(images, targets, frames.gather_masks(every) if frames.has_masks else None)

    def _needs_fit(self, sizes: list[list[int]]) -> bool:
        """Whether frames of these sizes are not the trained geometry (cropped, or a mismatch to refuse)."""
        fits = [fit_frame(h, w, self.camera, *self.camera_fit) for h, w in sizes]
        return any(fit.box != (0, h, 0, w) or fit.mismatch for fit, (h, w) in zip(fits, sizes))

    def close(self) -> None:
        """Free the model (and its GPU memory); the predictor cannot be used afterwards."""
        del self.model
        self.state = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
