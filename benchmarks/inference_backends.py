#!/usr/bin/env python3
"""Eager torch vs ONNX Runtime on one checkpoint: bare forward and predict(), 1 and 2 threads, one run.

The checkpoint is copied to a temporary folder and exported there with qattn_export's own code
(verified against torch). For each thread count both backends run the same 640x480 synthetic
frames, interleaved call by call (the order alternating) so that a busy neighbour on the machine
slows both alike:
  forward     the network on one normalized frame (SteeringPredictor.forward)
  predict     SteeringPredictor.predict on the camera frame: crop, resize, colour, normalize, forward
  preprocess  the preprocessing part of predict() alone, split into resize + colour (to_model_uint8)
              and normalization, the latter both as the torch ops and as the table look-up predict() uses
max_abs_diff: the largest |torch - onnxruntime| over steering (checkpoint unit) and attention, on
`--frames` frames through predict(), apart from frames where a quantizer code flips at a rounding
boundary (counted in code_flip_frames; max_abs_diff_all_frames includes them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.bench_models import exported_copy, synthetic_frames

BACKENDS = ("torch", "onnxruntime")


def percentiles(times_s: list[float]) -> dict[str, float]:
    ms = np.array(times_s) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def interleaved(calls: dict[str, callable], count: int, label: str) -> dict[str, dict[str, float]]:
    """Each call `count` times, alternating which goes first; p50/p99 per call."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for i in tqdm(range(count), desc=label, leave=False):
        for name in names if i % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            calls[name](i)
            times[name].append(time.perf_counter() - start)
    return {name: percentiles(t) for name, t in times.items()}


def output_differences(checkpoint: str, frames: list[np.ndarray]) -> dict:
    """|torch - onnxruntime| of predict() (steering and attention) over the frames.

    A frame whose torch features lie within FLIP_MARGIN quantizer steps of a rounding boundary rounds
    to the neighbouring code under ONNX Runtime's float order: it moves by a whole code, counted apart
    (`code_flip_frames`, and in `max_abs_diff_all_frames`) as qattn_export does.
    """
    from qattn_ros.inference.export import FLIP_MARGIN, code_margin
    from qattn_ros.inference.predictor import SteeringPredictor

    torch_predictor, ort_predictor = (SteeringPredictor(checkpoint, "cpu", name) for name in BACKENDS)
    rows = []
    for frame in tqdm(frames, desc="differences", leave=False):
        a, b = torch_predictor.predict(frame), ort_predictor.predict(frame)
        attention = float(np.abs(a.attention - b.attention).max()) if a.attention is not None else 0.0
        x = torch_predictor.normalize(torch_predictor.preprocessing.to_model_uint8(frame)[None])
        rows.append((abs(a.steering - b.steering), attention, float(code_margin(torch_predictor.model, x)[0])))
    steering, attention, margin = map(np.array, zip(*rows))
    worst = np.maximum(steering, attention)
    flip = (margin < FLIP_MARGIN) & (worst > 1e-5)
    g = lambda values: float(f"{values.max():.3g}") if len(values) else 0.0  # noqa: E731
    return {"max_abs_diff": g(worst[~flip]), "max_abs_diff_steering": g(steering[~flip]),
            "max_abs_diff_attention": g(attention[~flip]), "frames_compared": len(frames),
            "code_flip_frames": int(flip.sum()), "max_abs_diff_all_frames": g(worst),
            "frames_over_1e-5": int((worst > 1e-5).sum())}  # fmt: skip


def preprocessing_calls(preprocessing, frames: list[np.ndarray]) -> dict[str, callable]:
    """predict()'s preprocessing in parts: resize + colour, and normalization by torch ops or by table."""
    model_uint8 = preprocessing.to_model_uint8(frames[0])[None]
    return {
        "resize_colour": lambda i: preprocessing.to_model_uint8(frames[i % len(frames)]),
        "normalize_torch": lambda i: preprocessing.normalize(torch.from_numpy(np.array(model_uint8))),
        "normalize_table": lambda i: preprocessing.normalize_frames(model_uint8),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="default: an untrained quant_sign model (same compute)")
    parser.add_argument("--count", type=int, default=1000, help="timed calls per backend and measure")
    parser.add_argument("--frames", type=int, default=200, help="frames for max_abs_diff")
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()

    from benchmarks.record import record
    from qattn_ros.inference.predictor import SteeringPredictor
    from qattn_ros.ros.heap import keep_heap

    keep_heap()  # as the node runs
    load = [os.getloadavg()[0]]  # a shared machine: say how busy it was
    tmp = tempfile.TemporaryDirectory()
    folder = Path(tmp.name)
    checkpoint = exported_copy(args.checkpoint, folder)
    frames = synthetic_frames(30)

    details: dict[str, dict] = {}
    for threads in map(int, args.threads.split(",")):
        torch.set_num_threads(threads)  # the onnxruntime session takes the same count
        predictors = {name: SteeringPredictor(checkpoint, "cpu", name) for name in BACKENDS}
        preprocessing = predictors["torch"].preprocessing
        x = predictors["torch"].normalize(preprocessing.to_model_uint8(frames[0])[None])
        for predictor in predictors.values():  # warm-up
            for frame in frames[:10]:
                predictor.predict(frame)
        forward = interleaved({n: lambda i, p=p, x=x: p.forward(x) for n, p in predictors.items()}, args.count,
                              f"forward, {threads} thread(s)")  # fmt: skip
        predict = interleaved({n: lambda i, p=p: p.predict(frames[i % 30]) for n, p in predictors.items()},
                              args.count, f"predict, {threads} thread(s)")  # fmt: skip
        preprocess = interleaved(preprocessing_calls(preprocessing, frames), args.count,
                                 f"preprocess, {threads} thread(s)")  # fmt: skip
        details[f"threads_{threads}"] = {"forward": forward, "predict": predict, "preprocess": preprocess}

    torch.set_num_threads(1)
    diffs = output_differences(checkpoint, synthetic_frames(args.frames))
    tmp.cleanup()
    load.append(os.getloadavg()[0])

    one = details[next(iter(details))]
    ratio = lambda measure, q: round(one[measure]["torch"][q] / one[measure]["onnxruntime"][q], 2)  # noqa: E731
    summary = {
        "ort_vs_torch_forward": ratio("forward", "p50_ms"),
        "ort_vs_torch_forward_p99": ratio("forward", "p99_ms"),
        "ort_vs_torch_predict": ratio("predict", "p50_ms"),
        **diffs,
    }
    for key, measures in details.items():
        for measure in ("forward", "predict"):
            for backend in BACKENDS:
                for q, value in measures[measure][backend].items():
                    summary[f"{backend}_{measure}_{q}_{key}"] = value
    parts = one["preprocess"]
    summary["preprocess_p50_ms"] = round(parts["resize_colour"]["p50_ms"] + parts["normalize_table"]["p50_ms"], 3)
    record("inference_backends", summary, checkpoint=args.checkpoint or "untrained quant_sign", count=args.count,
           frames=args.frames, load_average_1min=load, image="640x480 rgb8, synthetic roads", details=details,
           note="ratios and the first thread count's figures are at the first --threads value; torch and "
           "onnxruntime calls interleaved; back to back, one frame at a time")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
