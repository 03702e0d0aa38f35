#!/usr/bin/env python3
"""A real drive replayed through the node: the test block of the Udacity drive as a ROS 2 bag, played into
qattn_steering, the published attention evaluated online, and the same frames evaluated offline.

    python training/export_bag.py --data data/udacity --block test --out data_out/hmb3_test
    python -m benchmarks.replay_real --record      # benchmarks/results/replay_real.json

Per frame, the deletion and insertion AUCs of the map the node published must equal those of the offline
evaluation of the attention on the same frame (the same JPEG bytes, decoded by the node and by the cache);
`max_abs_diff` says by how much they differ at most. Frames/s of both are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.record import record
from qattn_ros.explain.engine import read_results
from qattn_ros.ros.dds_domain import claim_domain_id

ROOT = Path(__file__).resolve().parents[1]
BAG_SPEC = {"kind": "ros2_bag", "camera_topic": "/camera/image_raw/compressed", "steering_topic": "/steering",
            "steering_unit": "steering_wheel_rad", "positive_is_left": True}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bag", default="data_out/hmb3_test", help="written by training/export_bag.py")
    parser.add_argument("--checkpoint", default="runs/udacity_ch2/models/binary_sign_s0/best")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", default="runs/replay_real")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--record", action="store_true", help="write benchmarks/results/replay_real.json")
    args = parser.parse_args(argv)
    source = json.dumps(BAG_SPEC | {"path": args.bag})
    out = Path(args.out)
    env = {**os.environ, "ROS_DOMAIN_ID": str(claim_domain_id())}
    start = time.perf_counter()
    replay = [sys.executable, "-m", "qattn_ros.ros.replay", source, "--checkpoint", args.checkpoint, "--out",
              str(out / "replay"), "--steps", str(args.steps), "--device", args.device]  # fmt: skip
    subprocess.run(replay, env=env, check=True)
    replay_s = time.perf_counter() - start
    evaluate = runpy.run_path(str(ROOT / "evaluation" / "evaluate.py"))["main"]
    start = time.perf_counter()
    evaluate(["--checkpoint", f"node={args.checkpoint}", "--data", source, "--methods", "attention", "--steps",
              str(args.steps), "--road-steps", "0", "--sanity-frames", "0", "--no-uniform", "--out",
              str(out / "offline"), "--cache-dir", str(out / "cache"), "--device", args.device])  # fmt: skip
    offline_s = time.perf_counter() - start
    online = {r["frame"]: r for r in read_results(out / "replay" / "node" / "attention.jsonl")}
    offline = {r["frame"]: r for r in read_results(out / "offline" / "node" / "attention.jsonl")}
    common = sorted(set(online) & set(offline))
    diffs = {
        key: max(abs(online[f][key] - offline[f][key]) for f in common) for key in ("deletion_auc", "insertion_auc")
    }
    report = json.loads((out / "replay" / "replay.json").read_text())
    summary = {
        "frames": len(offline),
        "replayed_and_evaluated": len(online),
        "compared": len(common),
        "max_abs_diff_deletion_auc": diffs["deletion_auc"],
        "max_abs_diff_insertion_auc": diffs["insertion_auc"],
        "replay_fps": round(report["counts"]["evaluated"] / report["first_frame_to_report_s"], 2),
        "offline_fps": round(len(offline) / offline_s, 2),
    }
    print(json.dumps(summary, indent=2))
    if args.record:
        walls = {"replay_wall_s": round(replay_s, 1), "offline_wall_s": round(offline_s, 1)}
        record("replay_real", summary, bag=args.bag, checkpoint=args.checkpoint, steps=args.steps, **walls,
               counts=report["counts"])  # fmt: skip
    return 0 if common and max(diffs.values()) <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
