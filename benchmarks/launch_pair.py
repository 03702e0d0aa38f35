#!/usr/bin/env python3
"""The README's node + camera pair, started as steering.launch.py starts them: are the frames delivered?

The steering node runs with the command launch_ros would give it (benchmarks/launch_reader.py reads
launch/steering.launch.py without `launch`), the camera as `camera_publisher --ros-args -p
source:=synthetic -p rate:=20.0 -p width:=640 -p height:=480 -p frames:=N`; each chooses its
DDS transport itself, as under `ros2 launch` / `ros2 run` with nothing set. A third process counts
the node's outputs (steering_angle, one per processed frame). Run once under the default
discovery range and once under ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST.
frames_received_ratio = frames the node answered / frames the camera published (the camera starts
once the node's subscription is matched); watchdog_stops = the node's "no camera frame" stops
while the camera ran. Target: ratio >= 0.95 and 0 stops under both ranges. For comparison the
same pair with Fast DDS's own transports (FASTDDS_BUILTIN_TRANSPORTS=DEFAULT, which the nodes keep
as the user's choice; rmw_fastrtps's own under LOCALHOST): --baseline.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from benchmarks import foreign_cameras
from qattn_ros.ros.graph import stop_as_launch_does

ROOT = Path(__file__).resolve().parents[1]


def count_outputs(seconds: float) -> None:
    """Role `counter`: count distinct steering_angle stamps until SIGINT or `seconds`; print the count."""
    import rclpy
    from sensor_msgs.msg import JointState

    from qattn_ros.ros.conventions import init_keeping_signals

    init_keeping_signals(None)
    node = rclpy.create_node("bench_counter")
    stamps = set()
    node.create_subscription(
        JointState, "steering_angle", lambda m: stamps.add((m.header.stamp.sec, m.header.stamp.nanosec)), 100
    )
    foreign_cameras.spin_until_interrupted(node, seconds)
    print(f"outputs {len(stamps)}", flush=True)
    rclpy.try_shutdown()


def wait_for(process: subprocess.Popen, log: Path, pattern: str, timeout: float) -> re.Match:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if match := re.search(pattern, log.read_text(errors="replace")):
            return match
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"no {pattern!r} in {log.name} after {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")


def run_pair(checkpoint: str, discovery_range: str, frames: int, rate: float, folder: Path, baseline: bool) -> dict:
    from benchmarks import launch_reader
    from qattn_ros.ros.dds_domain import claim_domain_id

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTDDS_", "FASTRTPS_", "ROS_AUTOMATIC"))}
    env |= {"ROS_DOMAIN_ID": str(claim_domain_id()), "PYTHONUNBUFFERED": "1"}
    if discovery_range != "default":
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = discovery_range
    if baseline:
        env["FASTDDS_BUILTIN_TRANSPORTS"] = "DEFAULT"
    launched = launch_reader.load(ROOT / "launch" / "steering.launch.py", {"checkpoint": checkpoint, "device": "cpu"})
    node_command = launched.node("qattn_steering").command(folder, launch_reader.entry_points())
    label = f"{'baseline_' if baseline else ''}{discovery_range}"
    logs = {name: folder / f"{label}_{name}.log" for name in ("node", "camera", "counter")}
    started = []

    def start(name: str, command: list[str]) -> subprocess.Popen:
        process = subprocess.Popen(command, env=env, stdout=logs[name].open("w"), stderr=subprocess.STDOUT)
        started.append(process)
        return process

    try:
        node = start("node", node_command)
        wait_for(node, logs["node"], r"active: commanding", 180)
        counter = start("counter", [sys.executable, "-m", "benchmarks.launch_pair", "--role", "counter"])
        wait_for(counter, logs["counter"], r"DDS transport", 60)
        time.sleep(2.0)  # the counter's subscription matched before the first frame
        camera = start("camera", [sys.executable, "-m", "qattn_ros.ros.camera_publisher", "--ros-args",
                                  "-p", "source:=synthetic", "-p", f"rate:={rate}", "-p", "width:=640",
                                  "-p", "height:=480", "-p", f"frames:={frames}"])  # fmt: skip
        node_log_start = len(logs["node"].read_text(errors="replace"))
        camera.wait(timeout=frames / rate * 3 + 120)
        node_log = logs["node"].read_text(errors="replace")[node_log_start:]
        time.sleep(2.0)  # the last answers
        counter.send_signal(signal.SIGINT)
        counter.wait(timeout=30)
        published = wait_for(camera, logs["camera"], r"published (\d+) frames in ([\d.]+) s", 5)
        answered = int(wait_for(counter, logs["counter"], r"outputs (\d+)", 5)[1])
        transport = wait_for(node, logs["node"], r"(DDS transport: [^\n]*)", 5)[1]
    finally:
        stop_as_launch_does(started)
    return {
        "label": label,
        "discovery_range": discovery_range,
        "frames_published": int(published[1]),
        "camera_seconds": float(published[2]),
        "frames_answered": answered,
        "frames_received_ratio": round(answered / max(int(published[1]), 1), 4),
        "watchdog_stops": node_log.count("no camera frame for"),
        "node_transport": transport,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("bench", "counter", "answers"), default="bench")
    parser.add_argument("--checkpoint", default="runs/demo/binary_sign/best.safetensors")
    parser.add_argument("--seconds", type=float, default=60.0, help="camera time per discovery range")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--baseline", action="store_true", help="also run with Fast DDS's own transports")
    parser.add_argument("--foreign", action="store_true", help="cameras that use no project code (foreign_cameras)")
    parser.add_argument("--foreign-seconds", type=float, default=10.0, help="camera time per foreign cell")
    parser.add_argument("--cameras", help="comma-separated foreign cameras (default: all of foreign_cameras.CAMERAS)")
    parser.add_argument("--ranges", default="default,LOCALHOST", help="discovery ranges of the foreign cells")
    parser.add_argument("--no-pair", action="store_true", help="only the foreign cells (with --name)")
    parser.add_argument("--name", default="launch_pair", help="benchmarks/results/<name>.json")
    args = parser.parse_args()
    if args.role == "counter":
        count_outputs(args.seconds * 10 + 600)
        return 0
    if args.role == "answers":
        foreign_cameras.count_answers(args.seconds * 10 + 600)
        return 0
    from benchmarks.record import record

    frames = round(args.seconds * args.rate)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_pair(args.checkpoint, r, frames, args.rate, Path(tmp), baseline)
                for baseline in (False, True)[: 1 + args.baseline] for r in ("default", "LOCALHOST")
                if not args.no_pair]  # fmt: skip
    summary = {f"{run['label']}_{key}": run[key] for run in runs
               for key in ("frames_received_ratio", "watchdog_stops", "frames_published")}  # fmt: skip
    ours = [r for r in runs if not r["label"].startswith("baseline")]
    cells = []
    if args.foreign:
        with tempfile.TemporaryDirectory() as tmp:
            cameras = args.cameras.split(",") if args.cameras else list(foreign_cameras.CAMERAS)
            cells = [foreign_cameras.run_cell(args.checkpoint, camera, r, load, args.foreign_seconds, Path(tmp))
                     for load in ("quiet", "hog") for r in args.ranges.split(",")
                     for camera in tqdm(cameras, desc=f"foreign cameras, {r}, {load}")]  # fmt: skip
        summary |= {f"{c['cell']}_{key}": c[key] for c in cells
                    for key in ("frames_received_ratio", "answered_ratio", "watchdog_stops", "p99_ms")}  # fmt: skip
    summary["target_met"] = all(r["frames_received_ratio"] >= 0.95 and r["watchdog_stops"] == 0 for r in ours + cells)
    record(args.name, summary, checkpoint=args.checkpoint, camera="synthetic 640x480 rgb8", rate_hz=args.rate,
           seconds=args.seconds, runs=runs, foreign_cameras=cells)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
