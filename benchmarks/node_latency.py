#!/usr/bin/env python3
"""Latency of the steering node vs a relay node and the bare model, in one run.

Four processes over real rclpy / Fast DDS: a publisher of 640x480 rgb8 frames at 30 Hz
(stamped when sent), the steering node, a relay node that only republishes each image
(the transport floor), and this process, which receives the node's last output
(attention/overlay) and the relay's copy and takes receive time - camera stamp. The bare
model (preprocessing + forward) is timed on the same frames afterwards.
Target (DESIGN 6): (node p99 - relay p99) <= 2 x model p99, and no frame dropped.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

FRAMES = 30  # distinct frames, cycled


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def synthetic_frames(count: int) -> list[np.ndarray]:
    from qattn_ros.data.synthetic import RoadGenerator

    generator = RoadGenerator(480, 640, seed=3)
    return [generator.frame(i).image for i in range(count)]


def run_publisher(rate: float, seconds: float) -> None:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from qattn_ros.ros.messages import fill_image

    rclpy.init()
    node = rclpy.create_node("bench_camera")
    publisher = node.create_publisher(Image, "image", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    frames = synthetic_frames(FRAMES)
    time.sleep(3.0)  # discovery
    start, sent = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        header = Header(stamp=node.get_clock().now().to_msg(), frame_id="camera")
        publisher.publish(fill_image(Image(), header, frames[sent % FRAMES], "rgb8"))
        sent += 1
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    print(f"sent {sent}", flush=True)
    rclpy.shutdown()


def run_relay() -> None:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_relay")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    out = node.create_publisher(Image, "relay/image", qos)
    node.create_subscription(Image, "image", out.publish, qos)
    try:
        rclpy.spin(node)
    except Exception:  # noqa: BLE001 - stopped by the benchmark
        pass


def spawn(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def model_latency(checkpoint: str, count: int) -> np.ndarray:
    import torch

    from qattn_ros.inference import SteeringPredictor
    from qattn_ros.ros.steering_node import DEFAULTS

    torch.set_num_threads(DEFAULTS["cpu_threads"])  # as the node runs it

    predictor = SteeringPredictor(checkpoint)
    frames = synthetic_frames(FRAMES)
    for frame in frames[:5]:
        predictor.predict(frame)
    times = []
    for i in range(count):
        start = time.perf_counter()
        predictor.predict(frames[i % FRAMES])
        times.append((time.perf_counter() - start) * 1000)
    return np.array(times)


def make_checkpoint(folder: Path) -> str:
    import torch

    from qattn_ros.model import ModelConfig, SteeringNet
    from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint
    from qattn_ros.preprocess import Preprocessing

    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="quant_sign")).eval()
    model.calibrate(torch.randn(8, 3, 80, 160))
    info = CheckpointInfo(model.config, Preprocessing().to_dict(), "sim_normalized", False)
    return str(save_checkpoint(folder / "bench", model, info))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--checkpoint", help="default: an untrained quant_sign model (same compute)")
    parser.add_argument("--role", choices=("bench", "publisher", "relay"), default="bench", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "publisher":
        run_publisher(args.rate, args.seconds)
        return 0
    if args.role == "relay":
        run_relay()
        return 0

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from record import record
    from sensor_msgs.msg import Image

    domain = str(100 + os.getpid() % 100)
    # Fast DDS's transports for large samples (shared memory + TCP): 640x480 images do not fit
    # the default UDP path without fragment loss under load.
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    env = {**os.environ, "ROS_DOMAIN_ID": domain, "PYTHONUNBUFFERED": "1"}
    tmp = tempfile.TemporaryDirectory()
    checkpoint = args.checkpoint or make_checkpoint(Path(tmp.name))
    node = spawn(["-m", "qattn_ros.ros.steering_node", "--ros-args", "-p", f"checkpoint:={checkpoint}"], env)
    relay = spawn([__file__, "--role", "relay"], env)
    rclpy.init(domain_id=int(domain))
    receiver = rclpy.create_node("bench_receiver")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
    arrivals: dict[str, dict[int, float]] = {"node": {}, "relay": {}}

    def on(kind):
        return lambda msg: arrivals[kind].setdefault(stamp_ns(msg), receiver.get_clock().now().nanoseconds)

    diagnostics: dict[str, str] = {}
    receiver.create_subscription(
        DiagnosticArray, "/diagnostics", lambda m: diagnostics.update({v.key: v.value for v in m.status[0].values}), 10
    )
    receiver.create_subscription(Image, "attention/overlay", on("node"), qos)
    receiver.create_subscription(Image, "relay/image", on("relay"), qos)
    end = time.monotonic() + 8
    while time.monotonic() < end:  # node start-up and discovery
        rclpy.spin_once(receiver, timeout_sec=0.05)
    publisher = spawn([__file__, "--role", "publisher", "--seconds", str(args.seconds), "--rate", str(args.rate)], env)
    while publisher.poll() is None:
        rclpy.spin_once(receiver, timeout_sec=0.01)
    end = time.monotonic() + 2
    while time.monotonic() < end:
        rclpy.spin_once(receiver, timeout_sec=0.01)
    sent = int(publisher.stdout.read().split("sent")[-1])
    for process in (node, relay):
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    rclpy.shutdown()

    node_ms = np.array([(t - s) / 1e6 for s, t in arrivals["node"].items()])
    relay_ms = np.array([(t - s) / 1e6 for s, t in arrivals["relay"].items()])
    model_ms = model_latency(checkpoint, 300)
    tmp.cleanup()
    p = lambda values, q: round(float(np.percentile(values, q)), 2)  # noqa: E731
    summary = {
        "p50_ms": p(node_ms, 50),
        "p99_ms": p(node_ms, 99),
        "relay_p50_ms": p(relay_ms, 50),
        "relay_p99_ms": p(relay_ms, 99),
        "model_p50_ms": p(model_ms, 50),
        "model_p99_ms": p(model_ms, 99),
        "ratio_p50": round((p(node_ms, 50) - p(relay_ms, 50)) / p(model_ms, 50), 2),
        "ratio_p99": round((p(node_ms, 99) - p(relay_ms, 99)) / p(model_ms, 99), 2),
        "dropped": sent - len(node_ms),
        "relay_dropped": sent - len(relay_ms),
        "frames": sent,
        "node_internal_p50_ms": float(diagnostics.get("latency_p50_ms", "nan")),
        "node_internal_p99_ms": float(diagnostics.get("latency_p99_ms", "nan")),
    }
    record("node_latency", summary, seconds=args.seconds, rate_hz=args.rate, image="640x480 rgb8",
           model_ms="SteeringPredictor.predict: preprocessing + forward, same frames, after the run")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
