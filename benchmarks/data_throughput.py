#!/usr/bin/env python3
"""Frames/s of the data paths: ROS 1 bag decode, JPEG folder decode, and cache reads.

All three produce model-resolution uint8 frames for training; the cache must feed
training at least 10x faster than decoding JPEGs on the fly (`cache_vs_jpeg`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.record import record
from qattn_ros.core.preprocess import Preprocessing
from qattn_ros.data.bags import udacity_bag
from qattn_ros.data.cache import build_cache
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.data.udacity_folder import UdacityFolderSource
from qattn_ros.data.writers import write_udacity_bag, write_udacity_folder


def decode_fps(source, preprocessing: Preprocessing) -> float:
    start = time.perf_counter()
    count = sum(1 for record in source if preprocessing.to_model_uint8(record.image) is not None)
    return count / (time.perf_counter() - start)


def cache_fps(images: np.ndarray, batch: int, rounds: int) -> float:
    rng = np.random.default_rng(0)
    start, count = time.perf_counter(), 0
    for _ in range(rounds):
        index = np.sort(rng.choice(len(images), size=min(batch, len(images)), replace=False))
        _ = np.ascontiguousarray(images[index])
        count += len(index)
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300, help="frames at 640x480 (Udacity camera size)")
    args = parser.parse_args()
    pre = Preprocessing(crop_top=0.4, crop_bottom=0.1)
    generator = RoadGenerator(480, 640, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        bag = write_udacity_bag(Path(tmp) / "HMB_1.bag", generator, args.frames, compression="lz4")
        write_udacity_folder(Path(tmp) / "folder", generator, args.frames)
        bag_fps = decode_fps(udacity_bag(str(bag)), pre)
        folder = UdacityFolderSource(Path(tmp) / "folder")
        jpeg_fps = decode_fps(folder, pre)
        frames = build_cache(folder, pre, Path(tmp) / "cache", progress=False)
        read_fps = cache_fps(frames.images, batch=64, rounds=200)
    summary = {
        "cache_fps": round(read_fps, 1),
        "jpeg_fps": round(jpeg_fps, 1),
        "bag_fps": round(bag_fps, 1),
        "cache_vs_jpeg": round(read_fps / jpeg_fps, 1),
    }
    note = "decode = read + JPEG decode + crop/resize/colour to 80x160; cache = random batches from the memmap"
    record("data_throughput", summary, frames=args.frames, camera="640x480 JPEG q95", batch=64, note=note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
