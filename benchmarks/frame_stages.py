#!/usr/bin/env python3
"""Where a camera frame's time goes in qattn_steering, per stage, at 640x480 and 1280x720, raw and JPEG.

    python -m benchmarks.frame_stages          # benchmarks/results/frame_stages.json

The node's own code on one thread (cpu_threads: 1), in this process: decode the message (raw bgr8 or a
JPEG CompressedImage), fit and resize to the model input (`to_model_uint8`), the forward pass, the
attention outputs (the map, and the overlay at `overlay_max_width` and at camera size), and serializing
the outputs for DDS. `total_ms` adds the stages of the default path; `fps_one_thread` is 1000 / total,
what one core can answer (a 30 Hz camera needs 33 ms or less).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from benchmarks.eval_throughput import random_checkpoint
from benchmarks.record import record
from qattn_ros.inference.predictor import SteeringPredictor
from qattn_ros.ros.attention_images import AttentionImages
from qattn_ros.ros.messages import compressed_to_rgb, image_to_rgb
from qattn_ros.rules.steering_params import DEFAULTS


def median_ms(work, repeats: int) -> float:
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return round(float(np.median(times)), 3)


def stages(predictor: SteeringPredictor, height: int, width: int, transport: str, repeats: int) -> dict:
    smooth = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8), (9, 9), 3)
    if transport == "raw":
        message = Image(height=height, width=width, encoding="bgr8", step=width * 3, data=smooth.tobytes())
        decode = lambda: image_to_rgb(message, DEFAULTS["max_pixels"])  # noqa: E731
    else:
        message = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", smooth)[1].tobytes())
        decode = lambda: compressed_to_rgb(message, DEFAULTS["max_pixels"])  # noqa: E731
    rgb = decode()
    model_input = predictor.normalize(predictor.to_model_uint8(rgb)[None])
    attention = predictor.predict(rgb).attention
    box, images = predictor.model_box(height, width), AttentionImages()
    width_cap = DEFAULTS["overlay_max_width"]
    outputs = images.build(Header(), rgb, attention, box, 0.5, "jet", width_cap)
    result = {
        "decode_ms": median_ms(decode, repeats),
        "fit_resize_color_ms": median_ms(lambda: predictor.to_model_uint8(rgb), repeats),
        "forward_ms": median_ms(lambda: predictor.forward(model_input, None), repeats),
        "attention_outputs_ms": median_ms(
            lambda: images.build(Header(), rgb, attention, box, 0.5, "jet", width_cap), repeats
        ),  # fmt: skip
        "attention_outputs_camera_size_ms": median_ms(
            lambda: images.build(Header(), rgb, attention, box, 0.5, "jet"), repeats
        ),  # fmt: skip
        "serialize_outputs_ms": median_ms(lambda: [serialize_message(m) for _, m in outputs], repeats),
    }
    result["total_ms"] = round(sum(v for k, v in result.items() if k != "attention_outputs_camera_size_ms"), 3)
    result["fps_one_thread"] = round(1000 / result["total_ms"], 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args(argv)
    torch.set_num_threads(DEFAULTS["cpu_threads"])
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        predictor = SteeringPredictor(random_checkpoint(Path(tmp)), "cpu")
        predictor.fit_camera("crop", 0.5, accept_mismatch=True)
        cells = {f"{w}x{h}_{t}": stages(predictor, h, w, t, args.repeats)
                 for w, h in ((640, 480), (1280, 720)) for t in ("raw", "jpeg")}  # fmt: skip
    summary = {f"{cell}_total_ms": v["total_ms"] for cell, v in cells.items()}
    summary["worst_fps_one_thread"] = min(v["fps_one_thread"] for v in cells.values())
    record("frame_stages", summary, cells=cells, overlay_max_width=DEFAULTS["overlay_max_width"], threads=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
