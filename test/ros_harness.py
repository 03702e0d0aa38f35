"""Drive a node in another process with real rclpy: publish frames, collect what comes back."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from processes import output, spawn
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_srvs.srv import SetBool

from qattn_ros.ros.dds_transport import apply_transport
from qattn_ros.ros.graph import ros_args

ROOT = Path(__file__).resolve().parents[1]
# This process and every node it starts use the transport the package's nodes choose for themselves
apply_transport()
_STAMPS = itertools.count(1000)
BEST_EFFORT = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)


def as_background_job() -> None:
    """What a shell does to a command started with `&` (no job control): SIGINT ignored, inherited by exec."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_process(
    module: str, params: dict, domain: int, remaps: dict | None = None, background: bool = False
) -> subprocess.Popen:
    command = [sys.executable, "-m", module, *ros_args(params)]
    for old, new in (remaps or {}).items():
        command += ["-r", f"{old}:={new}"]
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "PYTHONUNBUFFERED": "1"}
    return spawn(command, env=env, preexec_fn=as_background_job if background else None)


def stop_process(process: subprocess.Popen) -> str:
    """SIGTERM (SIGKILL after 10 s); the process's whole output."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return output(process)


class Harness:
    """A test-side node: publishers of camera frames, subscribers of every node output."""

    def __init__(self, name: str = "harness", reliable: bool = False) -> None:
        self.node = rclpy.create_node(name)
        self.reliable = reliable
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE) if reliable else BEST_EFFORT
        self.raw = self.node.create_publisher(Image, "image", qos)
        self.compressed = self.node.create_publisher(CompressedImage, "image/compressed", qos)
        self.received: dict[str, list] = defaultdict(list)
        for topic, kind, qos in (
            ("cmd_vel", TwistStamped, 50), ("steering_angle", JointState, 50),
            ("attention/overlay", Image, BEST_EFFORT), ("attention/map", Image, BEST_EFFORT),
            ("/diagnostics", DiagnosticArray, 10),
        ):  # fmt: skip
            self.node.create_subscription(kind, topic, lambda m, t=topic: self.received[t].append(m), qos)
        self.set_params = self.node.create_client(SetParameters, "/qattn_steering/set_parameters")

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.02)

    def next_stamp(self) -> Time:
        """A stamp no harness in this process has used: outputs are matched to inputs by it."""
        return Time(sec=next(_STAMPS), nanosec=123)

    def by_stamp(self, topic: str, stamp: Time) -> list:
        return [
            m
            for m in self.received[topic]
            if m.header.stamp.sec == stamp.sec and m.header.stamp.nanosec == stamp.nanosec
        ]

    def wait_for_node(self, name: str = "qattn_steering", timeout: float = 90.0) -> None:
        """Until a node of that name is in the graph: its start-up (imports, a loaded machine) is not
        charged to the answer timeout of the first frame."""
        end = time.monotonic() + timeout
        while name not in self.node.get_node_names():
            assert time.monotonic() < end, f"no node {name} in the graph after {timeout} s"
            rclpy.spin_once(self.node, timeout_sec=0.05)

    def send(self, msg, timeout: float = 20.0, wait_for: tuple[str, ...] = ("cmd_vel",)) -> dict[str, object] | None:
        """Publish `msg` (re-sent while nothing comes back: best effort) until outputs with its stamp arrive;
        None if none came within `timeout` s of the node being in the graph."""
        self.wait_for_node()
        msg.header.stamp = self.next_stamp()
        publisher = self.compressed if isinstance(msg, CompressedImage) else self.raw
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            publisher.publish(msg)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                rclpy.spin_once(self.node, timeout_sec=0.02)
                if all(self.by_stamp(t, msg.header.stamp) for t in wait_for):
                    self.spin(0.2)
                    return {
                        t: self.by_stamp(t, msg.header.stamp)
                        for t in ("cmd_vel", "steering_angle", "attention/overlay", "attention/map")
                    }
        return None

    def send_bad(self, msg, seconds: float = 1.5) -> bool:
        """Publish a bad frame (once if reliable, else a few times); True if nothing came back for it."""
        msg.header.stamp = self.next_stamp()
        publisher = self.compressed if isinstance(msg, CompressedImage) else self.raw
        for _ in range(1 if self.reliable else 3):
            publisher.publish(msg)
            self.spin(seconds / (1 if self.reliable else 3))
        return not self.by_stamp("cmd_vel", msg.header.stamp)

    def diagnostics(self, timeout: float = 5.0) -> dict[str, str]:
        start = len(self.received["/diagnostics"])
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.received["/diagnostics"]) <= start:
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return {kv.key: kv.value for kv in self.received["/diagnostics"][-1].status[0].values}

    def set_parameter(self, name: str, value) -> bool:
        if not self.set_params.wait_for_service(timeout_sec=10):
            raise TimeoutError("set_parameters service not available")
        if isinstance(value, bool):
            pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
        elif isinstance(value, float):
            pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
        else:
            pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        future = self.set_params.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=pv)]))
        end = time.monotonic() + 10
        while not future.done() and time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return bool(future.result().results[0].successful)


def raw_message(rgb: np.ndarray, encoding: str) -> Image:
    import cv2

    converted = {
        "rgb8": rgb, "bgr8": rgb[..., ::-1], "mono8": cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY),
        "rgba8": cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA), "bgra8": cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA),
    }[encoding]  # fmt: skip
    converted = np.ascontiguousarray(converted)
    msg = Image(height=converted.shape[0], width=converted.shape[1], encoding=encoding, step=converted.strides[0])
    msg.data = converted.tobytes()
    msg.header.frame_id = "camera"
    return msg


def compressed_message(rgb: np.ndarray, fmt: str) -> CompressedImage:
    import cv2

    ok, data = cv2.imencode(".png" if fmt == "png" else ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    msg = CompressedImage(format=fmt)
    msg.data = data.tobytes()
    msg.header.frame_id = "camera"
    return msg


def call(harness: Harness, client, request, timeout: float = 10.0):
    """A service call from the harness; its response (None after `timeout` s)."""
    assert client.wait_for_service(timeout_sec=timeout), client.srv_name
    future = client.call_async(request)
    end = time.monotonic() + timeout
    while not future.done() and time.monotonic() < end:
        rclpy.spin_once(harness.node, timeout_sec=0.05)
    return future.result()


def until(harness: Harness, condition, timeout: float = 60.0) -> bool:
    """Spin the harness until `condition()` or `timeout` s; the condition's last value."""
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        rclpy.spin_once(harness.node, timeout_sec=0.02)
    return bool(condition())


class Lifecycle:
    """The node's standard lifecycle services, called from the harness."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.change = harness.node.create_client(ChangeState, "/qattn_steering/change_state")
        self.get = harness.node.create_client(GetState, "/qattn_steering/get_state")
        self.enable = harness.node.create_client(SetBool, "/qattn_steering/enable")

    def transition(self, transition_id: int) -> bool:
        return call(self.harness, self.change, ChangeState.Request(transition=Transition(id=transition_id))).success

    def state(self) -> int:
        return call(self.harness, self.get, GetState.Request()).current_state.id

    def set_enabled(self, enabled: bool) -> str:
        response = call(self.harness, self.enable, SetBool.Request(data=enabled))
        assert response.success
        return response.message
