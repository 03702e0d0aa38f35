#!/usr/bin/env python3
"""Replay evaluation speed: the whole lockstep graph against offline evaluation of the same frames.

    python -m benchmarks.replay_throughput [--frames 200 --steps 50]

Both evaluate the same Udacity-layout ROS 1 bag with the same checkpoint and methods (the
attention and the random floor, deletion and insertion). Offline: `training/evaluate.py`
from a warm frame cache, checkpoint loading and report included. Replay: `qattn_replay` in
lockstep (bag player -> steering node -> replay evaluator, three processes over Fast DDS),
from the first frame received to the report written. Frames/s = evaluated frames / seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.eval_throughput import random_checkpoint
from benchmarks.record import record
from qattn_ros.data.sources import open_source
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.data.writers import write_udacity_bag
from qattn_ros.predictor import SteeringPredictor
from qattn_ros.ros.dds_domain import claim_domain_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = str(random_checkpoint(folder))
        bag = str(write_udacity_bag(folder / "HMB_1.bag", RoadGenerator(480, 640, seed=3), args.frames))
        SteeringPredictor(checkpoint, "cpu").frames(open_source(bag), folder / "cache")  # warm cache: decode once

        evaluate = runpy.run_path(str(Path(__file__).resolve().parents[1] / "training" / "evaluate.py"))["main"]
        start = time.perf_counter()
        evaluate(["--checkpoint", f"model={checkpoint}", "--data", bag, "--methods", "attention,random",
                       "--steps", str(args.steps), "--out", str(folder / "offline"), "--cache-dir",
                       str(folder / "cache"), "--device", args.device])  # fmt: skip
        offline_s = time.perf_counter() - start

        env = {**os.environ, "ROS_DOMAIN_ID": str(claim_domain_id())}
        subprocess.run([sys.executable, "-m", "qattn_ros.ros.replay", bag, "--checkpoint", checkpoint, "--out",
                        str(folder / "replay"), "--steps", str(args.steps), "--device", args.device], env=env,
                       check=True)  # fmt: skip
        replay = json.loads((folder / "replay" / "replay.json").read_text())
    counts = replay["counts"]
    replay_fps = counts["evaluated"] / replay["first_frame_to_report_s"]
    offline_fps = args.frames / offline_s
    summary = {
        "replay_fps": round(replay_fps, 2),
        "offline_fps": round(offline_fps, 2),
        "replay_vs_offline": round(replay_fps / offline_fps, 3),
        "frames": args.frames,
        "evaluated": counts["evaluated"],
        "dropped": counts["unmatched"] + counts["skipped_busy"],
    }
    record("replay_throughput", summary, steps=args.steps, methods=["attention", "random"], camera="640x480 jpeg",
           offline_s=round(offline_s, 2), replay=replay)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
