#!/usr/bin/env python3
"""Replay evaluation speed: the whole lockstep graph against offline evaluation of the same frames,
under both discovery ranges and with a CPU hog on one core.

    python -m benchmarks.replay_throughput [--frames 80 --steps 50]

Both evaluate the same Udacity-layout ROS 1 bag (640x480 jpeg) with the same checkpoint and
methods (the attention and the random floor, deletion and insertion). Offline:
`evaluation/evaluate.py` from a warm frame cache, checkpoint loading and report included.
Replay: `qattn_replay` in lockstep (bag player -> steering node -> replay evaluator, three
processes over Fast DDS), from the first frame received to the report written. Frames/s =
evaluated frames / seconds. Runs, in one sitting:

- `default`: the default discovery range; `replay_vs_offline` = its replay / the offline figure.
- `localhost`: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST; `localhost_ratio` = its replay / offline.
- `loaded`: a busy loop pinned to core 0 while offline and replay run again; `loaded_ratio` =
  loaded replay / loaded offline.

`localhost_vs_default` and `loaded_vs_default` compare the replays with each other (what the
discovery range and the hog cost the graph itself). `resent` counts camera frames the recording
holds beyond those played (a frame sent twice would show there); `dropped` frames the evaluator
never evaluated (unmatched, or skipped as busy). `load_average`: the machine's 1-minute load
when the run started (other work on a shared machine slows offline's 64-frame groups more than
the replay evaluator's pieces of a few frames).
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

from rosbags.highlevel import AnyReader

from benchmarks.eval_throughput import random_checkpoint
from benchmarks.record import record
from qattn_ros.data.sources import open_source
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.data.writers import write_udacity_bag
from qattn_ros.inference.predictor import SteeringPredictor
from qattn_ros.ros.dds_domain import claim_domain_id

ROOT = Path(__file__).resolve().parents[1]
HOG = "import os\nos.sched_setaffinity(0, {0})\nwhile True:\n    pass\n"


def offline_fps(bag: str, checkpoint: str, folder: Path, args: argparse.Namespace) -> float:
    evaluate = runpy.run_path(str(ROOT / "evaluation" / "evaluate.py"))["main"]
    start = time.perf_counter()
    evaluate(["--checkpoint", f"model={checkpoint}", "--data", bag, "--methods", "attention,random", "--steps",
              str(args.steps), "--out", str(folder), "--cache-dir", str(folder.parent / "cache"), "--device",
              args.device])  # fmt: skip
    return args.frames / (time.perf_counter() - start)


def replay_run(bag: str, checkpoint: str, folder: Path, args: argparse.Namespace, env: dict) -> dict:
    """One lockstep replay: its figures, the camera frames it recorded included."""
    subprocess.run([sys.executable, "-m", "qattn_ros.ros.replay", bag, "--checkpoint", checkpoint, "--out",
                    str(folder), "--steps", str(args.steps), "--device", args.device], env=env, check=True)  # fmt: skip
    replay = json.loads((folder / "replay.json").read_text())
    with AnyReader([Path(replay["recording"])]) as reader:
        images = sum(c.msgcount for c in reader.connections if c.topic.endswith("/image"))
    counts, player = replay["counts"], replay["player"]
    return {
        "replay_fps": round(counts["evaluated"] / replay["first_frame_to_report_s"], 3),
        "evaluated": counts["evaluated"],
        "played": player["played"],
        "held": player["held"],
        "resent": images - player["played"],
        "dropped": counts["unmatched"] + counts["skipped_busy"],
        "seconds": replay["first_frame_to_report_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    base = {k: v for k, v in os.environ.items() if k not in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY")}
    base["ROS_DOMAIN_ID"] = str(claim_domain_id())
    runs: dict[str, dict] = {}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = str(random_checkpoint(folder))
        bag = str(write_udacity_bag(folder / "HMB_1.bag", RoadGenerator(480, 640, seed=3), args.frames))
        SteeringPredictor(checkpoint, "cpu").frames(open_source(bag), folder / "cache")  # warm cache: decode once
        quiet = offline_fps(bag, checkpoint, folder / "offline", args)
        runs["default"] = replay_run(bag, checkpoint, folder / "default", args, base)
        runs["localhost"] = replay_run(bag, checkpoint, folder / "localhost", args,
                                       {**base, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"})  # fmt: skip
        hog = subprocess.Popen([sys.executable, "-c", HOG])
        try:
            loaded = offline_fps(bag, checkpoint, folder / "offline_loaded", args)
            runs["loaded"] = replay_run(bag, checkpoint, folder / "loaded", args, base)
        finally:
            hog.kill()
            hog.wait()
    runs["default"]["offline_fps"] = runs["localhost"]["offline_fps"] = round(quiet, 3)
    runs["loaded"]["offline_fps"] = round(loaded, 3)
    summary = {
        "replay_fps": runs["default"]["replay_fps"],
        "offline_fps": round(quiet, 2),
        "replay_vs_offline": round(runs["default"]["replay_fps"] / quiet, 3),
        "localhost_ratio": round(runs["localhost"]["replay_fps"] / quiet, 3),
        "loaded_ratio": round(runs["loaded"]["replay_fps"] / loaded, 3),
        "localhost_vs_default": round(runs["localhost"]["replay_fps"] / runs["default"]["replay_fps"], 3),
        "loaded_vs_default": round(runs["loaded"]["replay_fps"] / runs["default"]["replay_fps"], 3),
        "resent": max(run["resent"] for run in runs.values()),
        "frames": args.frames,
        "evaluated": min(run["evaluated"] for run in runs.values()),
        "dropped": max(run["dropped"] for run in runs.values()),
    }
    record("replay_throughput", summary, steps=args.steps, methods=["attention", "random"], camera="640x480 jpeg",
           hog="a busy loop pinned to core 0 (loaded: offline and replay both under it)", load_average=load,
           runs=runs)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
