"""Cameras that use none of this package's code: does every frame reach the steering node, and how late is its answer?

Each camera is a plain rclpy publisher started with the environment of a user's shell (no
FASTDDS_*, no profile of this package): (a) reliable depth 10 (rclpy's and rclcpp's default),
(b) REP-2003 sensor data (best effort depth 5), (c) best effort depth 1; raw 640x480 rgb8 at 20 Hz
and 1280x720 bgr8 at 30 Hz, JPEG 640x480 and 1280x720 at 30 Hz on `image/compressed`, and the encodings of
USB and machine-vision drivers (yuv422_yuy2, uyvy, bayer_rggb8) at 640x480 and 1280x720, 30 Hz. The steering node
runs as its console executable with nothing set but the checkpoint (and transport:=compressed for
JPEG), under the default discovery range and LOCALHOST, on a quiet machine and beside a CPU hog
on one core. Per cell: frames_received_ratio = frames the node's subscription took (its
diagnostics, total_frames_in) / frames published; answered_ratio = steering commands / frames
published (the node runs the model on the newest frame and skips the rest by design);
watchdog_stops = the node's "no camera frame" stops while the camera ran; p99 latency from the
camera's stamp to the command's arrival in a third process.

python -m benchmarks.launch_pair --foreign        (records into benchmarks/results/launch_pair.json)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CAMERA = """
import sys, time
import numpy as np, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
qos_name, fmt, width, height, rate, seconds = sys.argv[1:7]
width, height, rate, seconds = int(width), int(height), float(rate), float(seconds)
qos = {"reliable_depth_10": QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
       "sensor_data": qos_profile_sensor_data,
       "best_effort_depth_1": QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)}[qos_name]
rclpy.init()
node = rclpy.create_node("plain_camera")
jpeg = fmt == "jpeg"
publisher = node.create_publisher(CompressedImage if jpeg else Image, "image/compressed" if jpeg else "image", qos)
end = time.monotonic() + 120
while publisher.get_subscription_count() == 0 and time.monotonic() < end:  # the node
    rclpy.spin_once(node, timeout_sec=0.1)
time.sleep(2.0)
rng = np.random.default_rng(0)
pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
per_pixel = {"rgb8": 3, "bgr8": 3, "yuv422_yuy2": 2, "uyvy": 2, "bayer_rggb8": 1}.get(fmt, 3)
if jpeg:
    import cv2
    data = cv2.imencode(".jpg", pixels)[1].tobytes()
else:
    data = pixels.reshape(-1)[: height * width * per_pixel].tobytes()
count, start = 0, time.monotonic()
while time.monotonic() - start < seconds:
    if jpeg:
        message = CompressedImage(format="jpeg", data=data)
    else:
        message = Image(height=height, width=width, encoding=fmt, step=width * per_pixel, data=data)
    message.header.stamp = node.get_clock().now().to_msg()
    message.header.frame_id = "camera"
    publisher.publish(message)
    count += 1
    time.sleep(max(0.0, start + count / rate - time.monotonic()))
print(f"published {count}", flush=True)
"""

CAMERAS = {  # name: (qos, format, width, height, rate)
    "reliable10_640x480": ("reliable_depth_10", "rgb8", 640, 480, 20.0),
    "sensor_640x480": ("sensor_data", "rgb8", 640, 480, 20.0),
    "besteffort1_640x480": ("best_effort_depth_1", "rgb8", 640, 480, 20.0),
    "reliable10_1280x720": ("reliable_depth_10", "bgr8", 1280, 720, 30.0),
    "sensor_1280x720": ("sensor_data", "bgr8", 1280, 720, 30.0),
    "besteffort1_1280x720": ("best_effort_depth_1", "bgr8", 1280, 720, 30.0),
    "sensor_jpeg_1280x720": ("sensor_data", "jpeg", 1280, 720, 30.0),
    # what USB / V4L2 and machine-vision drivers publish, at 30 Hz
    "yuyv_640x480": ("sensor_data", "yuv422_yuy2", 640, 480, 30.0),
    "uyvy_640x480": ("sensor_data", "uyvy", 640, 480, 30.0),
    "bayer_640x480": ("sensor_data", "bayer_rggb8", 640, 480, 30.0),
    "sensor_jpeg_640x480": ("sensor_data", "jpeg", 640, 480, 30.0),
    "yuyv_1280x720": ("sensor_data", "yuv422_yuy2", 1280, 720, 30.0),
    "uyvy_1280x720": ("sensor_data", "uyvy", 1280, 720, 30.0),
    "bayer_1280x720": ("sensor_data", "bayer_rggb8", 1280, 720, 30.0),
}


def users_shell(domain: int, discovery_range: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTDDS_", "FASTRTPS_", "ROS_AUTOMATIC"))}
    env |= {"ROS_DOMAIN_ID": str(domain), "PYTHONUNBUFFERED": "1"}
    if discovery_range != "default":
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = discovery_range
    return env


def spin_until_interrupted(node, seconds: float) -> None:
    """A counting role's loop: until SIGINT (the benchmark is done) or `seconds`."""
    import rclpy

    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass


def count_answers(seconds: float) -> None:
    """Role `answers`: cmd_vel arrival minus its stamp (ms) and the node's total_frames_in, until SIGINT."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import TwistStamped

    from qattn_ros.ros.conventions import init_keeping_signals

    init_keeping_signals(None)
    node = rclpy.create_node("bench_answers")
    latencies: dict[tuple[int, int], float] = {}
    frames_in = [0]

    def on_command(m) -> None:
        stamp = (m.header.stamp.sec, m.header.stamp.nanosec)
        if m.twist.linear.x > 0 and stamp not in latencies:
            latencies[stamp] = (time.time_ns() - (stamp[0] * 1_000_000_000 + stamp[1])) / 1e6

    def on_diagnostics(m) -> None:
        for status in m.status:
            values = {kv.key: kv.value for kv in status.values}
            frames_in[0] = int(values.get("total_frames_in", frames_in[0]))

    node.create_subscription(TwistStamped, "cmd_vel", on_command, 100)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    spin_until_interrupted(node, seconds)
    values = np.array(list(latencies.values()) or [float("nan")])
    print(f"answers {len(latencies)} frames_in {frames_in[0]} p50 {np.percentile(values, 50):.2f} "
          f"p99 {np.percentile(values, 99):.2f}", flush=True)  # fmt: skip
    rclpy.try_shutdown()


def _wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout: float) -> str:
    end = time.monotonic() + timeout
    while True:
        running = process.poll() is None
        for line in log.read_text(errors="replace").splitlines():
            if text in line:
                return line
        if not running or time.monotonic() > end:
            break
        time.sleep(0.2)
    raise RuntimeError(f"no {text!r} in {log}:\n{log.read_text(errors='replace')[-3000:]}")


def run_cell(checkpoint: str, camera: str, discovery_range: str, load: str, seconds: float, folder: Path) -> dict:
    """One camera x discovery range x load."""
    from qattn_ros.ros.dds_domain import claim_domain_id
    from qattn_ros.ros.graph import stop_as_launch_does

    qos, fmt, width, height, rate = CAMERAS[camera]
    env = users_shell(claim_domain_id(), discovery_range)
    label = f"{camera}_{discovery_range}_{load}"
    logs = {name: folder / f"{label}_{name}.log" for name in ("node", "camera", "answers")}
    started: list[subprocess.Popen] = []

    def start(name: str, command: list[str]) -> subprocess.Popen:
        started.append(subprocess.Popen(command, env=env, stdout=logs[name].open("w"), stderr=subprocess.STDOUT))
        return started[-1]

    transport = "compressed" if fmt == "jpeg" else "raw"
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load == "hog" else None  # one core busy
    try:
        node = start("node", [sys.executable, "-m", "qattn_ros.ros.entry_points", "steering_node", "--ros-args",
                              "-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu",
                              "-p", f"transport:={transport}"])  # fmt: skip
        _wait_for_line(logs["node"], "active: commanding", node, 180)
        answers = start("answers", [sys.executable, "-m", "benchmarks.launch_pair", "--role", "answers"])
        _wait_for_line(logs["answers"], "DDS transport", answers, 60)
        node_log_start = len(logs["node"].read_text(errors="replace"))
        cam = start("camera", [sys.executable, "-c", CAMERA, qos, fmt, str(width), str(height), str(rate),
                               str(seconds)])  # fmt: skip
        cam.wait(timeout=seconds * 3 + 180)
        node_log = logs["node"].read_text(errors="replace")[node_log_start:]
        time.sleep(2.5)  # the last answers and a diagnostics window
        answers.send_signal(signal.SIGINT)
        answers.wait(timeout=30)
        published = int(_wait_for_line(logs["camera"], "published", cam, 5).split()[1])
        words = _wait_for_line(logs["answers"], "answers ", answers, 5).split()
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
        stop_as_launch_does(started)
    answered, frames_in, p50, p99 = int(words[1]), int(words[3]), float(words[5]), float(words[7])
    return {
        "cell": label, "camera": camera, "qos": qos, "format": fmt, "size": f"{width}x{height}", "rate_hz": rate,
        "discovery_range": discovery_range, "load": load, "frames_published": published, "frames_in": frames_in,
        "frames_received_ratio": round(frames_in / max(published, 1), 4),
        "answered_ratio": round(answered / max(published, 1), 4),
        "watchdog_stops": node_log.count("no camera frame for"), "p50_ms": p50, "p99_ms": p99,
        "qos_line": next((line for line in node_log.splitlines() if "image QoS" in line), ""),
    }  # fmt: skip
