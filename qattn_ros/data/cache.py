"""Decode and preprocess a source once into memory-mapped uint8 arrays at model resolution.

A cache entry lives in `<cache_dir>/<key>/` where the key hashes the source fingerprint
and the preprocessing that shapes the pixels (and the camera geometry frames are fitted onto,
when one is given); a changed source or config gets a new key and is rebuilt, never silently
reused. The entry records the frame sizes it met, so a reader can tell whether its frames
needed fitting onto a checkpoint's camera geometry. An entry is built in a temporary folder, its
files fsynced, and renamed when complete, so an interrupted build leaves earlier entries intact;
an entry a crash left unreadable is refused by name and built again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..core.atomic import atomic_folder, refuse
from ..core.errors import DataError
from ..core.preprocess import CameraGeometry, Preprocessing, fit_frame
from .record import Source

CACHE_VERSION = 2  # 2: frame_sizes and camera in meta.json
FIT = ("crop", 0.5)  # how frames are fitted onto a camera geometry by default: centred crop (preprocess.fit_frame)


@dataclass
class CachedFrames:
    """One source's frames: images (N, h, w, 3) uint8 memmap, labels in the source's unit."""

    images: np.ndarray
    steering: np.ndarray  # (N,) float32
    stamps: np.ndarray  # (N,) int64 ns
    speed: np.ndarray  # (N,) float32, NaN where unknown
    masks: np.ndarray | None  # (N, h, w) uint8 relevance coverage 0..255
    steering_unit: str
    positive_is_left: bool
    meta: dict

    def __len__(self) -> int:
        return len(self.steering)


def fit_record(camera: CameraGeometry, fit: tuple[str, float] = FIT) -> list:
    """How frames were fitted, as the cache key and meta.json record it (and a reader compares it)."""
    return [camera.width, camera.height, *fit]


def cache_key(
    source: Source, preprocessing: Preprocessing, camera: CameraGeometry | None = None, fit: tuple[str, float] = FIT
) -> str:
    spec = {"v": CACHE_VERSION, "source": source.fingerprint(), "pre": preprocessing.cache_key()}
    if camera is not None:
        spec["camera"] = fit_record(camera, fit)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def mask_to_model(mask: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """A camera-resolution bool mask -> (h, w) uint8 coverage at model resolution."""
    top, bottom = preprocessing.crop_rows(mask.shape[0])
    cropped = mask[top:bottom].astype(np.float32)
    resized = cv2.resize(cropped, (preprocessing.width, preprocessing.height), interpolation=cv2.INTER_AREA)
    return np.clip(resized * 255 + 0.5, 0, 255).astype(np.uint8)


def open_cache(folder: Path) -> CachedFrames:
    """A built entry; DataError naming the file when one is missing, unreadable or short of frames."""
    path = folder / "meta.json"
    try:
        meta = json.loads(path.read_text())
        count = meta["count"]
        arrays = {}
        for key in ("images", "steering", "stamps", "speed", "masks"):
            if key == "masks" and not meta["has_masks"]:
                continue
            path = folder / f"{key}.npy"
            arrays[key] = np.load(path, mmap_mode="r" if key in ("images", "masks") else None)
            if len(arrays[key]) < count:
                raise ValueError(f"{len(arrays[key])} frames, meta.json says {count}")
        return CachedFrames(
            images=arrays["images"][:count],
            steering=arrays["steering"][:count],
            stamps=arrays["stamps"][:count],
            speed=arrays["speed"][:count],
            masks=arrays["masks"][:count] if meta["has_masks"] else None,
            steering_unit=meta["steering_unit"],
            positive_is_left=meta["positive_is_left"],
            meta=meta,
        )
    except (OSError, ValueError, EOFError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
        raise DataError(f"{path}: unreadable cache entry ({error})") from None


def build_cache(
    source: Source,
    preprocessing: Preprocessing,
    cache_dir: str | Path,
    progress: bool = True,
    camera: CameraGeometry | None = None,
    fit: tuple[str, float] = FIT,
) -> CachedFrames:
    """The cached frames of `source`, built first if no entry matches.

    `camera`: frames of another aspect are first fitted onto it (`fit`: mode and anchor, as the node's
    `camera_fit` and `crop_anchor`), so that a checkpoint is evaluated on what it would see in the node; a
    frame that cannot be is refused.
    """
    folder = Path(cache_dir) / cache_key(source, preprocessing, camera, fit)
    if (folder / "meta.json").is_file():
        try:
            return open_cache(folder)
        except DataError as error:
            refuse(folder, str(error))
    if len(source) == 0:
        raise DataError(f"source has no frames: {source.fingerprint()}")
    with atomic_folder(folder) as tmp:
        _write_entry(tmp, source, preprocessing, progress, camera, fit)
    return open_cache(folder)


def _write_entry(tmp: Path, source: Source, preprocessing: Preprocessing, progress: bool,
                 camera: CameraGeometry | None, fit: tuple[str, float]) -> None:  # fmt: skip
    """Decode, fit and preprocess every frame of `source` into the new entry folder `tmp`."""
    capacity = len(source)
    tmp.mkdir()
    shape = (preprocessing.height, preprocessing.width)
    images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(capacity, *shape, 3))
    masks = None
    steering = np.zeros(capacity, np.float32)
    stamps = np.zeros(capacity, np.int64)
    speed = np.full(capacity, np.nan, np.float32)
    count, sizes = 0, set()
    for record in tqdm(source, total=capacity, desc="cache", unit="frame", disable=not progress):
        image, mask = record.image, record.mask
        sizes.add(image.shape[:2])
        if camera is not None:
            fitted = fit_frame(*image.shape[:2], camera, *fit)
            if fitted.mismatch:
                raise DataError(f"{source.fingerprint()}, frame {count}: {fitted.mismatch}")
            top, bottom, left, right = fitted.box
            image = image[top:bottom, left:right]
            mask = None if mask is None else mask[top:bottom, left:right]
        images[count] = preprocessing.to_model_uint8(image)
        if mask is not None:
            if masks is None:
                masks = np.lib.format.open_memmap(
                    tmp / "masks.npy", mode="w+", dtype=np.uint8, shape=(capacity, *shape)
                )
            masks[count] = mask_to_model(mask, preprocessing)
        steering[count], stamps[count] = record.steering, record.stamp_ns
        if record.speed is not None:
            speed[count] = record.speed
        count += 1
    if count == 0:
        raise DataError(f"no readable frames in source {source.fingerprint()} (skipped: {source.skipped()})")
    images.flush()
    if masks is not None:
        masks.flush()
    np.save(tmp / "steering.npy", steering)
    np.save(tmp / "stamps.npy", stamps)
    np.save(tmp / "speed.npy", speed)
    meta = {
        "count": count,
        "has_masks": masks is not None,
        "skipped": source.skipped(),
        "steering_unit": source.steering_unit,
        "positive_is_left": source.positive_is_left,
        "source": source.fingerprint(),
        "preprocessing": preprocessing.cache_key(),
        "frame_sizes": sorted([int(h), int(w)] for h, w in sizes),  # (height, width) of the decoded frames
        "camera": None if camera is None else fit_record(camera, fit),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
