#!/usr/bin/env python3
"""Latency of the steering node vs a relay node and the bare model, in one run.

Real rclpy / Fast DDS processes, in two phases of the same run: a publisher of 640x480 rgb8
frames at 30 Hz (stamped when sent) feeds first a relay node that only republishes each image
(the transport floor), then the steering node; this process receives the relay's copy or the
node's last output (attention/overlay) and takes receive time - camera stamp. The phases run
one after the other so that neither subject steals CPU from the other (2 cores). The bare
model (preprocessing + forward) is timed on the same frames afterwards, at the camera rate
(the node's situation) and back to back.
Target: (node - relay) <= 2 x model at p50 and p99, and no frame dropped.
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

from benchmarks.bench_models import exported_copy, make_checkpoint, synthetic_frames

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 30  # distinct frames, cycled


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


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

    from qattn_ros.ros.heap import keep_heap

    keep_heap()  # as the steering node does, so the floor is measured under the same allocator
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
        [sys.executable, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def model_latency(checkpoint: str, count: int, rate: float, backend: str = "torch") -> tuple[np.ndarray, np.ndarray]:
    """SteeringPredictor.predict times (ms): one frame per camera period as in the node, and back to back.

    At 30 Hz the core idles between frames and each forward starts with cold caches (on this
    2-core VM about 2x the back-to-back time), so the paced figure is the node's real model cost.
    """
    import torch

    from qattn_ros.inference.predictor import SteeringPredictor
    from qattn_ros.ros.heap import keep_heap
    from qattn_ros.ros.steering_node import DEFAULTS

    torch.set_num_threads(DEFAULTS["cpu_threads"])  # as the node runs it
    keep_heap()
    predictor = SteeringPredictor(checkpoint, "cpu", backend)
    frames = synthetic_frames(FRAMES)
    for frame in frames[:5]:
        predictor.predict(frame)

    def timed(index: int) -> float:
        start = time.perf_counter()
        predictor.predict(frames[index % FRAMES])
        return (time.perf_counter() - start) * 1000

    paced = []
    for i in range(count):
        time.sleep(1.0 / rate)
        paced.append(timed(i))
    return np.array(paced), np.array([timed(i) for i in range(count)])


def stop(process: subprocess.Popen) -> None:
    """SIGINT (a clean DDS shutdown frees its shared memory), SIGKILL only if that hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def measure(subject: list[str], topic: str, args) -> dict:
    """One phase: start `subject`, stream frames through it, return latencies (ms), frames sent, diagnostics."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from qattn_ros.ros.dds_domain import claim_domain_id

    domain = str(claim_domain_id())  # held while this benchmark runs: no concurrent run shares it
    env = {**os.environ, "ROS_DOMAIN_ID": domain, "PYTHONUNBUFFERED": "1"}
    process = spawn(subject, env)
    rclpy.init(domain_id=int(domain))
    receiver = rclpy.create_node("bench_receiver")
    arrivals: dict[int, int] = {}
    diagnostics: list[dict[str, str]] = []  # one per window of the node's diagnostics
    receiver.create_subscription(
        DiagnosticArray, "/diagnostics", lambda m: diagnostics.append({v.key: v.value for v in m.status[0].values}), 10
    )
    receiver.create_subscription(
        Image, topic, lambda msg: arrivals.setdefault(stamp_ns(msg), receiver.get_clock().now().nanoseconds),
        QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT),
    )  # fmt: skip
    end = time.monotonic() + 8
    while time.monotonic() < end:  # start-up and discovery
        rclpy.spin_once(receiver, timeout_sec=0.05)
    role = ["-m", "benchmarks.node_latency", "--role"]
    publisher = spawn([*role, "publisher", "--seconds", str(args.seconds), "--rate", str(args.rate)], env)
    deadline = time.monotonic() + 2 * args.seconds + 60  # generous: a loaded machine starts the publisher late
    while publisher.poll() is None and time.monotonic() < deadline:
        rclpy.spin_once(receiver, timeout_sec=0.01)
    stop(publisher)  # it has printed its count; its Fast DDS shutdown occasionally hangs
    end = time.monotonic() + 2
    while time.monotonic() < end:
        rclpy.spin_once(receiver, timeout_sec=0.01)
    output = publisher.stdout.read()
    stop(process)
    rclpy.shutdown()
    if "sent" not in output:  # the subject is stopped first: a failed phase leaves no node running
        raise RuntimeError(f"the publisher did not finish in {2 * args.seconds + 60:.0f} s: {output[-500:]}")
    sent = int(output.split("sent")[-1])
    latency_ms = np.array([(received - stamp) / 1e6 for stamp, received in arrivals.items()])
    return {"latency_ms": latency_ms, "sent": sent, "diagnostics": diagnostics}


def node_figures(node: dict, relay: dict, model_ms: np.ndarray, back_to_back_ms: np.ndarray) -> dict:
    """The summary figures of one node phase against the relay and the bare model."""
    node_ms, relay_ms = node["latency_ms"], relay["latency_ms"]
    totals = node["diagnostics"][-1] if node["diagnostics"] else {}
    busy = [w for w in node["diagnostics"] if int(w.get("frames_out", 0)) > 0]
    p = lambda values, q: round(float(np.percentile(values, q)), 2)  # noqa: E731
    return {
        "p50_ms": p(node_ms, 50),
        "p99_ms": p(node_ms, 99),
        "relay_p50_ms": p(relay_ms, 50),
        "relay_p99_ms": p(relay_ms, 99),
        "model_p50_ms": p(model_ms, 50),
        "model_p99_ms": p(model_ms, 99),
        "ratio_p50": round((p(node_ms, 50) - p(relay_ms, 50)) / p(model_ms, 50), 2),
        "ratio_p99": round((p(node_ms, 99) - p(relay_ms, 99)) / p(model_ms, 99), 2),
        "model_back_to_back_p50_ms": p(back_to_back_ms, 50),
        "model_back_to_back_p99_ms": p(back_to_back_ms, 99),
        "ratio_p50_back_to_back": round((p(node_ms, 50) - p(relay_ms, 50)) / p(back_to_back_ms, 50), 2),
        "ratio_p99_back_to_back": round((p(node_ms, 99) - p(relay_ms, 99)) / p(back_to_back_ms, 99), 2),
        "dropped": node["sent"] - len(node_ms),
        "relay_dropped": relay["sent"] - len(relay_ms),
        "frames": node["sent"],
        "node_frames_in": int(totals.get("total_frames_in", -1)),
        "node_dropped_inside": int(totals.get("total_dropped", -1)),
        # receipt to last publish inside the node, over the windows that had frames
        "node_internal_p50_ms": round(float(np.median([float(w["latency_p50_ms"]) for w in busy] or [np.nan])), 2),
        "node_internal_p99_ms": round(float(np.max([float(w["latency_p99_ms"]) for w in busy] or [np.nan])), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--checkpoint", help="default: an untrained quant_sign model (same compute)")
    parser.add_argument("--backends", default="torch", help="comma-separated: the node phase and model timing for "
                        "each (torch, onnxruntime: exported to a temporary copy first)")  # fmt: skip
    parser.add_argument("--role", choices=("bench", "publisher", "relay"), default="bench", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "publisher":
        run_publisher(args.rate, args.seconds)
        return 0
    if args.role == "relay":
        run_relay()
        return 0

    from benchmarks.record import record
    from qattn_ros.ros.dds_transport import apply_transport

    # the package's transport (shared memory for whole frames) in this process and the ones it starts
    apply_transport()
    tmp = tempfile.TemporaryDirectory()
    load = [os.getloadavg()[0]]  # a shared machine: say how busy it was
    backends = args.backends.split(",")
    if "onnxruntime" in backends:
        checkpoint = exported_copy(args.checkpoint, Path(tmp.name))
    else:
        checkpoint = args.checkpoint or make_checkpoint(Path(tmp.name))
    relay = measure(["-m", "benchmarks.node_latency", "--role", "relay"], "relay/image", args)
    summary: dict = {}
    for backend in backends:
        node = measure(["-m", "qattn_ros.ros.steering_node", "--ros-args", "-p", f"checkpoint:={checkpoint}", "-p",
                        f"backend:={backend}"], "attention/overlay", args)  # fmt: skip
        figures = node_figures(node, relay, *model_latency(checkpoint, 300, args.rate, backend))
        summary.update(figures if not summary else {f"{backend}_{k}": v for k, v in figures.items()})
    tmp.cleanup()
    load.append(os.getloadavg()[0])
    if len(backends) > 1:
        summary["backends"] = backends
    record("node_latency", summary, seconds=args.seconds, rate_hz=args.rate, image="640x480 rgb8",
           load_average_1min=load,
           phases=f"relay, then the node ({', '.join(backends)}), each alone with the publisher and the receiver",
           model_ms="SteeringPredictor.predict: preprocessing + forward on the same frames after the run, "
           "one per camera period (model_*) and back to back (model_back_to_back_*)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
