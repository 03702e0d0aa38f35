"""qattn_steering: camera image in; steering command, attention overlay and diagnostics out.

Subscribes `image` (sensor_msgs/Image) or `image/compressed` (sensor_msgs/CompressedImage),
best effort, keep last 1 by default. The subscription only keeps the newest frame; a
worker thread runs the model on it, so parameter services stay responsive while frames
stream, and a frame overwritten before the worker took it counts as dropped.

Publishes, each with the input header (commands with frame_id = base_frame):
  cmd_vel (TwistStamped), steering_angle (Float32, checkpoint unit), drive
  (AckermannDriveStamped, where ackermann_msgs is installed), attention/overlay (bgr8,
  camera size), attention/map (32FC1, the raw map), /diagnostics (1 Hz).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque

import cv2
import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import TwistStamped
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float32

from ..device import pick_device
from ..errors import CheckpointError, ConfigError
from ..explain.overlay import COLORMAPS, overlay
from ..predictor import SteeringPredictor
from ..units import DEFAULT_VEHICLE, yaw_rate
from .heap import keep_heap
from .messages import BadFrame, compressed_to_rgb, fill_image, image_to_rgb

try:
    from ackermann_msgs.msg import AckermannDriveStamped
except ImportError:  # optional: not on PyPI, present on a ROS 2 install that has it
    AckermannDriveStamped = None

# Defaults; config/steering_node.yaml carries the same values (a test checks they agree).
DEFAULTS = {
    "checkpoint": "",
    "device": "auto",
    "transport": "raw",
    "reliability": "best_effort",
    "base_frame": "base_link",
    "cruise_speed": 2.0,
    "wheelbase": DEFAULT_VEHICLE.wheelbase,
    "publish_overlay": True,
    "overlay_alpha": 0.5,
    "colormap": "jet",
    "max_pixels": 4096 * 4096,
    "cpu_threads": 1,
    "keep_heap": True,
    "diagnostics_period": 1.0,
}
RUNTIME = {"cruise_speed", "publish_overlay", "overlay_alpha", "colormap"}


class StartupError(RuntimeError):
    """The node cannot start (checkpoint, device, parameters); the message says why."""


class SteeringNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("qattn_steering", **node_kwargs)
        for name, default in DEFAULTS.items():
            self.declare_parameter(name, default, ParameterDescriptor(read_only=name not in RUNTIME))
        p = {name: self.get_parameter(name).value for name in DEFAULTS}
        if not p["checkpoint"]:
            raise StartupError("parameter 'checkpoint' is empty: pass checkpoint:=<path to .safetensors or .json>")
        if p["transport"] not in ("raw", "compressed"):
            raise StartupError(f"transport={p['transport']!r}: expected raw or compressed")
        if p["reliability"] not in ("best_effort", "reliable"):
            raise StartupError(f"reliability={p['reliability']!r}: expected best_effort or reliable")
        if p["keep_heap"] and not keep_heap():
            self.get_logger().warning("keep_heap: not a glibc process, per-frame buffers are allocated anew")
        if not p["wheelbase"] > 0:
            raise StartupError(f"wheelbase={p['wheelbase']}: must be > 0 m")
        try:
            device = pick_device(p["device"])
            if device.type == "cpu" and p["cpu_threads"] > 0:
                torch.set_num_threads(p["cpu_threads"])  # one image at a time: more threads mostly wait on each other
            self.predictor = SteeringPredictor(p["checkpoint"], device)
        except (CheckpointError, ConfigError) as error:
            raise StartupError(str(error)) from None
        info = self.predictor.info
        self.get_logger().info(
            f"{info.model.variant} checkpoint {p['checkpoint']} on {device} (device={p['device']}); steering unit "
            f"{info.steering_unit}, positive {'left' if info.positive_is_left else 'right'}, converted to the "
            f"front-wheel angle with the checkpoint's {info.vehicle}"
        )
        for note in info.notes:
            self.get_logger().warning(note)
        self.device, self.max_pixels, self.base_frame = str(device), p["max_pixels"], p["base_frame"]
        self.wheelbase = p["wheelbase"]
        self.add_on_set_parameters_callback(self._validate_parameters)

        reliability = ReliabilityPolicy.BEST_EFFORT if p["reliability"] == "best_effort" else ReliabilityPolicy.RELIABLE
        image_qos = QoSProfile(depth=1, reliability=reliability)
        if p["transport"] == "raw":
            self.create_subscription(Image, "image", self._on_image, image_qos)
            self.decode = image_to_rgb
        else:
            self.create_subscription(CompressedImage, "image/compressed", self._on_image, image_qos)
            self.decode = compressed_to_rgb
        self.pub_cmd = self.create_publisher(TwistStamped, "cmd_vel", 10)
        self.pub_angle = self.create_publisher(Float32, "steering_angle", 10)
        self.pub_drive = self.create_publisher(AckermannDriveStamped, "drive", 10) if AckermannDriveStamped else None
        self.pub_overlay = self.create_publisher(Image, "attention/overlay", image_qos)
        self.pub_map = self.create_publisher(Image, "attention/map", image_qos)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        self.counts = {"frames_in": 0, "frames_out": 0, "dropped": 0, "bad": 0}
        self.latency_ms: deque[float] = deque(maxlen=1000)
        self._pending: tuple | None = None
        self._overlay: Image | None = None
        self._wake = threading.Condition()
        self._running = True
        self._worker = threading.Thread(target=self._work, name="qattn_inference", daemon=True)
        self._worker.start()
        self.create_timer(p["diagnostics_period"], self._publish_diagnostics)

    # -- parameters -------------------------------------------------------------------------
    def _validate_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == "overlay_alpha" and not 0.0 <= float(param.value) <= 1.0:
                return SetParametersResult(successful=False, reason="overlay_alpha must be in [0, 1]")
            if param.name == "cruise_speed" and not 0.0 <= float(param.value) <= 40.0:
                return SetParametersResult(successful=False, reason="cruise_speed must be in [0, 40] m/s")
            if param.name == "colormap" and param.value not in COLORMAPS:
                return SetParametersResult(successful=False, reason=f"colormap must be one of {', '.join(COLORMAPS)}")
        return SetParametersResult(successful=True)

    # -- frames -----------------------------------------------------------------------------
    def _on_image(self, msg) -> None:
        with self._wake:
            self.counts["frames_in"] += 1
            if self._pending is not None:
                self.counts["dropped"] += 1
            self._pending = (msg, time.monotonic())
            self._wake.notify()

    def _work(self) -> None:
        while self._running:
            with self._wake:
                while self._pending is None and self._running:
                    self._wake.wait(timeout=0.5)
                if not self._running:
                    return
                msg, received = self._pending
                self._pending = None
            try:
                self._process(msg)
            except BadFrame as error:
                self.counts["bad"] += 1
                self.get_logger().warning(f"bad frame skipped: {error}", throttle_duration_sec=1.0)
                continue
            except Exception as error:  # keep running past anything a single frame can cause
                self.counts["bad"] += 1
                self.get_logger().error(f"frame failed: {type(error).__name__}: {error}", throttle_duration_sec=1.0)
                continue
            self.counts["frames_out"] += 1
            self.latency_ms.append((time.monotonic() - received) * 1000)

    def _process(self, msg) -> None:
        rgb = self.decode(msg, self.max_pixels)
        prediction = self.predictor.predict(rgb)
        speed = float(self.get_parameter("cruise_speed").value)
        angle = prediction.wheel_angle

        cmd = TwistStamped()
        cmd.header.stamp, cmd.header.frame_id = msg.header.stamp, self.base_frame
        cmd.twist.linear.x = speed
        cmd.twist.angular.z = yaw_rate(speed, angle, self.wheelbase)
        self.pub_cmd.publish(cmd)
        self.pub_angle.publish(Float32(data=prediction.steering))
        if self.pub_drive is not None:
            drive = AckermannDriveStamped()
            drive.header.stamp, drive.header.frame_id = msg.header.stamp, self.base_frame
            drive.drive.steering_angle, drive.drive.speed = float(angle), speed
            self.pub_drive.publish(drive)
        if prediction.attention is None:
            return
        self.pub_map.publish(fill_image(Image(), msg.header, prediction.attention.astype(np.float32), "32FC1"))
        if self.get_parameter("publish_overlay").value:
            alpha, colormap = float(self.get_parameter("overlay_alpha").value), self.get_parameter("colormap").value
            overlay_msg, bgr = self._overlay_message(msg.header, *rgb.shape[:2])
            cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=bgr)
            top, bottom, left, right = self.predictor.preprocessing.model_box(*rgb.shape[:2])
            # outside the model's box the attention is 0: only the box is blended, the map stretched onto it
            box = bgr[top:bottom, left:right]
            overlay(box, prediction.attention, alpha, colormap, bgr=True, out=box)
            self.pub_overlay.publish(overlay_msg)

    def _overlay_message(self, header, height: int, width: int) -> tuple[Image, np.ndarray]:
        """The overlay message and an (H, W, 3) view of its data, reused while the camera size stays.

        Publishing copies the message, so one buffer serves every frame; a fresh 1 MB array per
        frame costs more in page faults than the blending itself.
        """
        if self._overlay is None or (self._overlay.height, self._overlay.width) != (height, width):
            self._overlay = fill_image(Image(), header, np.zeros((height, width, 3), np.uint8), "bgr8")
        self._overlay.header = header
        return self._overlay, np.frombuffer(self._overlay.data, np.uint8).reshape(height, width, 3)

    # -- diagnostics ------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        latency = np.array(self.latency_ms) if self.latency_ms else np.zeros(1)
        status = DiagnosticStatus()
        status.name = f"{self.get_name()}: inference"
        status.hardware_id = self.device
        trouble = self.counts["bad"] or self.counts["dropped"]
        status.level = DiagnosticStatus.WARN if trouble else DiagnosticStatus.OK
        status.message = "bad or dropped frames" if trouble else "ok"
        values = {**self.counts, "latency_p50_ms": f"{np.percentile(latency, 50):.2f}",
                  "latency_p99_ms": f"{np.percentile(latency, 99):.2f}"}  # fmt: skip
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self.pub_diag.publish(array)

    def close(self) -> None:
        self._running = False
        with self._wake:
            self._wake.notify()
        self._worker.join(timeout=2.0)
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    try:
        rclpy.init(args=args)
        node = SteeringNode()
    except (StartupError, ParameterException, rclpy_implementation.RCLError) as error:
        print(f"qattn_steering: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
