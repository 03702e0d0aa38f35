"""qattn_steering: camera image in; steering command, attention overlay and diagnostics out.

A managed (lifecycle) node, safe to put on a car:
  configure   checks every parameter, loads and verifies the checkpoint, creates the publishers
  activate    subscribes to the camera and starts commanding
  deactivate  publishes a zero-speed command and stops commanding
  cleanup     frees the model (and its GPU memory)
  shutdown    a last zero-speed command
`autostart` (default true) configures and activates at start, so a plain `ros2 run` drives.
The `~/enable` service (std_srvs/SetBool) pauses and resumes commands without unloading.

Safety: a camera watchdog commands zero speed when no frame came for `camera_timeout` s
(diagnostics ERROR) and resumes with the next frame; a NaN or infinite prediction commands
zero speed and is counted; the front-wheel angle is clamped to `max_steering_angle`; a
recurrent model forgets its state when stamps go back or skip more than `max_frame_gap`.

Subscribes `image` (sensor_msgs/Image) or `image/compressed` (sensor_msgs/CompressedImage),
best effort, keep last 1 by default. The subscription keeps only the newest frame; a worker
thread runs the model on it, so services answer while frames stream, and a frame replaced
before the worker took it counts as dropped. Publishes, each with the input header
(commands with frame_id = base_frame): cmd_vel (TwistStamped, or Twist), steering_angle
(JointState `front_wheel`: the predicted front-wheel angle, rad, before clamping), drive
(AckermannDriveStamped, where ackermann_msgs is installed), attention/overlay (bgr8, camera
size), attention/map (32FC1), /diagnostics.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_srvs.srv import SetBool

from ..backends import BACKENDS
from ..device import pick_device
from ..errors import CheckpointError, ConfigError
from ..explain.overlay import COLORMAPS, overlay
from ..predictor import SteeringPredictor
from ..units import DEFAULT_VEHICLE, yaw_rate
from .conventions import init_keeping_signals
from .heap import keep_heap
from .messages import BadFrame, compressed_to_rgb, fill_image, image_to_rgb, steering_message

try:
    from ackermann_msgs.msg import AckermannDriveStamped
except ImportError:  # optional: not on PyPI, present on a ROS 2 install that has it
    AckermannDriveStamped = None


@dataclass(frozen=True)
class Param:
    default: bool | int | float | str
    description: str
    low: float | None = None  # allowed range, in the descriptor
    high: float | None = None
    choices: tuple[str, ...] = ()
    runtime: bool = False  # may change while the node runs


PARAMS = {
    "checkpoint": Param("", "path to <name>.safetensors (its <name>.json beside it)"),
    "autostart": Param(True, "configure and activate at start"),
    "device": Param("auto", "auto | cpu | cuda | cuda:N"),
    "backend": Param("torch", "torch, or onnxruntime[:tensorrt] on qattn_export's <name>.onnx", choices=BACKENDS),
    "transport": Param("raw", "subscribe `image` (raw) or `image/compressed`", choices=("raw", "compressed")),
    "reliability": Param("best_effort", "image QoS reliability", choices=("best_effort", "reliable")),
    "base_frame": Param("base_link", "frame_id of cmd_vel and drive"),
    "cmd_vel_type": Param("twist_stamped", "cmd_vel message type", choices=("twist_stamped", "twist")),
    "cruise_speed": Param(2.0, "m/s, linear.x of cmd_vel", 0.0, 40.0, runtime=True),
    "max_steering_angle": Param(0.6, "rad, front wheel: larger predictions are clamped", 0.01, 1.5),
    "wheelbase": Param(DEFAULT_VEHICLE.wheelbase, "m, this vehicle's, for the yaw rate of cmd_vel", 0.1, 10.0),
    "camera_timeout": Param(0.5, "s without a frame before the watchdog stops the vehicle", 0.05, 10.0),
    "max_frame_gap": Param(1.0, "s: a larger stamp gap (or a step back) resets a recurrent model", 0.01, 3600.0),
    "publish_overlay": Param(True, "publish attention/overlay", runtime=True),
    "overlay_alpha": Param(0.5, "heat-map opacity at the peak", 0.0, 1.0, runtime=True),
    "colormap": Param("jet", "overlay colour map", choices=tuple(COLORMAPS), runtime=True),
    "max_pixels": Param(4096 * 4096, "larger frames are refused and counted as bad", 1, 2**28),
    "cpu_threads": Param(1, "torch threads on CPU (0: torch's default)", 0, 256),
    "keep_heap": Param(True, "glibc: reuse freed frame buffers instead of fresh pages"),
    "diagnostics_period": Param(1.0, "s, the diagnostics window", 0.1, 60.0),
}
DEFAULTS = {name: spec.default for name, spec in PARAMS.items()}  # config/steering_node.yaml holds the same
COUNTERS = ("frames_in", "frames_out", "dropped", "bad", "nonfinite", "clamped")  # per diagnostics window


class StartupError(RuntimeError):
    """The node cannot start (parameters, checkpoint, device); the message says why."""


def _descriptor(name: str, spec: Param) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(name=name, read_only=not spec.runtime, description=spec.description)
    if spec.choices:
        descriptor.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if spec.low is not None and isinstance(spec.default, float):
        descriptor.floating_point_range = [FloatingPointRange(from_value=spec.low, to_value=spec.high, step=0.0)]
    elif spec.low is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
    return descriptor


class SteeringNode(LifecycleNode):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("qattn_steering", **node_kwargs)
        for name, spec in PARAMS.items():
            try:
                self.declare_parameter(name, spec.default, _descriptor(name, spec))
            except ParameterException as error:
                kind = type(spec.default).__name__
                allowed = f"a {kind} in [{spec.low}, {spec.high}]" if spec.low is not None else f"a {kind}"
                raise StartupError(f"parameter {name} must be {allowed} ({error})") from None
        for name, spec in PARAMS.items():
            value = self.get_parameter(name).value
            if spec.choices and value not in spec.choices:
                raise StartupError(f"parameter {name}={value!r}: expected one of {', '.join(spec.choices)}")
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.p = {name: self.get_parameter(name).value for name in PARAMS}
        self.predictor: SteeringPredictor | None = None
        self.configure_error = ""  # why the last configure failed
        self.publishers_: dict[str, object] = {}
        self.subscription = None
        self.active = self.enabled = False
        self.stopped_by_watchdog = False
        self.lock = threading.Lock()  # commands from the worker, the watchdog and transitions
        self.window = self._new_window()
        self.totals = dict.fromkeys(COUNTERS, 0)
        self.last_frame = time.monotonic()
        self.last_stamp_ns: int | None = None
        self._pending: tuple | None = None
        self._overlay: Image | None = None
        self._wake = threading.Condition()
        self._running = True
        self._worker = threading.Thread(target=self._work, name="qattn_inference", daemon=True)
        self._worker.start()
        self.create_service(SetBool, "~/enable", self._on_enable)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # with use_sim_time too: a stopped /clock must not stop them
        self.create_timer(min(0.05, self.p["camera_timeout"] / 4), self._watchdog, clock=steady)
        self.create_timer(self.p["diagnostics_period"], self._publish_diagnostics, clock=steady)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    # -- lifecycle ---------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.p
        if not p["checkpoint"]:
            return self._configure_failed("parameter 'checkpoint' is empty: pass checkpoint:=<path to .safetensors>")
        try:
            device = pick_device(p["device"])
            if device.type == "cpu" and p["cpu_threads"] > 0:
                torch.set_num_threads(p["cpu_threads"])  # one image at a time: more threads mostly wait on each other
            self.predictor = SteeringPredictor(p["checkpoint"], device, p["backend"])
        except (CheckpointError, ConfigError) as error:
            return self._configure_failed(str(error))
        if p["keep_heap"] and not keep_heap():
            self.get_logger().warning("keep_heap: not a glibc process, per-frame buffers are allocated anew")
        info = self.predictor.info
        self.get_logger().info(
            f"{info.model.variant} checkpoint {p['checkpoint']} on {device} (device={p['device']}, backend="
            f"{p['backend']}); steering unit "
            f"{info.steering_unit}, positive {'left' if info.positive_is_left else 'right'}, converted to the "
            f"front-wheel angle with the checkpoint's {info.vehicle}"
        )
        for note in info.notes:
            self.get_logger().warning(note)
        image_qos = self._image_qos()
        command_type = TwistStamped if p["cmd_vel_type"] == "twist_stamped" else Twist
        self.publishers_ = {
            "cmd_vel": self.create_publisher(command_type, "cmd_vel", 10),
            "steering_angle": self.create_publisher(JointState, "steering_angle", 10),
            "overlay": self.create_publisher(Image, "attention/overlay", image_qos),
            "map": self.create_publisher(Image, "attention/map", image_qos),
        }
        if AckermannDriveStamped is not None:
            self.publishers_["drive"] = self.create_publisher(AckermannDriveStamped, "drive", 10)
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        self.configure_error = reason
        self.get_logger().error(f"configure failed: {reason}")
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.p["transport"] == "raw":
            self.subscription = self.create_subscription(Image, "image", self._on_image, self._image_qos())
            self.decode = image_to_rgb
        else:
            self.subscription = self.create_subscription(
                CompressedImage, "image/compressed", self._on_image, self._image_qos()
            )
            self.decode = compressed_to_rgb
        with self.lock:
            self.last_frame, self.last_stamp_ns = time.monotonic(), None
            self.active = self.enabled = True
        self.get_logger().info(f"active: commanding from {self.subscription.topic_name}")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stand_down("deactivated")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stand_down("shutting down")
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stand_down("error")
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stand_down(self, why: str) -> None:
        """Stop commanding: a zero-speed command, then no more."""
        with self.lock:
            was_commanding = self.active
            self.active = False
            command = self.publishers_.get("cmd_vel")
            if command is not None:
                self._publish_stop(None)
        if command is not None:  # before anything is torn down: the stop must reach every reliable subscriber
            command.wait_for_all_acked(Duration(seconds=1.0))
        if self.subscription is not None:
            self.destroy_subscription(self.subscription)
            self.subscription = None
        if was_commanding:
            self.get_logger().info(f"{why}: zero-speed command sent")

    def _release(self) -> None:
        for publisher in self.publishers_.values():
            self.destroy_publisher(publisher)
        self.publishers_ = {}
        if self.predictor is not None:
            self.predictor.close()
            self.predictor = None

    def _image_qos(self) -> QoSProfile:
        best_effort = self.p["reliability"] == "best_effort"
        return QoSProfile(
            depth=1, reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE
        )

    # -- parameters and services --------------------------------------------------------------
    def _validate_parameters(self, params) -> SetParametersResult:
        """Runtime changes follow the start-up rules: ranges (in the descriptors) and choices (here)."""
        for param in params:
            spec = PARAMS.get(param.name)
            if spec is not None and spec.choices and param.value not in spec.choices:
                return SetParametersResult(successful=False,
                                           reason=f"{param.name} must be one of {', '.join(spec.choices)}")  # fmt: skip
        for param in params:
            if param.name in self.p:
                self.p[param.name] = param.value
        return SetParametersResult(successful=True)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        with self.lock:
            self.enabled = request.data
            if not request.data and "cmd_vel" in self.publishers_:
                self._publish_stop(None)
        response.success = True
        response.message = "commands enabled" if request.data else "commands paused: zero-speed command sent"
        self.get_logger().info(response.message)
        return response

    # -- commands -----------------------------------------------------------------------------
    def _publish_command(self, header, speed: float, angle: float) -> None:
        """cmd_vel (and drive) for a front-wheel angle at a speed; caller holds the lock."""
        stamp = header.stamp if header is not None else self.get_clock().now().to_msg()
        twist = Twist()
        twist.linear.x, twist.angular.z = speed, yaw_rate(speed, angle, self.p["wheelbase"])
        if self.p["cmd_vel_type"] == "twist_stamped":
            command = TwistStamped(twist=twist)
            command.header.stamp, command.header.frame_id = stamp, self.p["base_frame"]
        else:
            command = twist
        self.publishers_["cmd_vel"].publish(command)
        if "drive" in self.publishers_:
            drive = AckermannDriveStamped()
            drive.header.stamp, drive.header.frame_id = stamp, self.p["base_frame"]
            drive.drive.steering_angle, drive.drive.speed = float(angle), speed
            self.publishers_["drive"].publish(drive)

    def _publish_stop(self, header) -> None:
        self._publish_command(header, 0.0, 0.0)

    def _watchdog(self) -> None:
        """No frame for camera_timeout s while active: zero speed, repeated until frames return."""
        with self.lock:
            if not (self.active and self.enabled) or time.monotonic() - self.last_frame <= self.p["camera_timeout"]:
                return
            self._publish_stop(None)
            if not self.stopped_by_watchdog:
                self.stopped_by_watchdog = True
                self.get_logger().error(f"no camera frame for {self.p['camera_timeout']} s: vehicle stopped")

    # -- frames -------------------------------------------------------------------------------
    def _on_image(self, msg) -> None:
        with self._wake:
            self.window["frames_in"] += 1
            if self._pending is not None:
                self.window["dropped"] += 1
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
                self.window["bad"] += 1
                self.get_logger().warning(f"bad frame skipped: {error}", throttle_duration_sec=1.0)
                continue
            except Exception as error:  # keep running past anything a single frame can cause
                self.window["bad"] += 1
                self.get_logger().error(f"frame failed: {type(error).__name__}: {error}", throttle_duration_sec=1.0)
                continue
            self.window["frames_out"] += 1
            self.window["latency_ms"].append((time.monotonic() - received) * 1000)

    def _process(self, msg) -> None:
        predictor = self.predictor
        if predictor is None or not self.active:
            return
        rgb = self.decode(msg, self.p["max_pixels"])
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if self.last_stamp_ns is not None:
            gap = (stamp_ns - self.last_stamp_ns) / 1e9
            if gap < 0 or gap > self.p["max_frame_gap"]:
                predictor.reset()  # a new sequence: a recurrent state from before would mislead
        self.last_stamp_ns = stamp_ns
        prediction = predictor.predict(rgb)
        limit = self.p["max_steering_angle"]
        finite = bool(np.isfinite(prediction.steering) and np.isfinite(prediction.wheel_angle))
        angle = float(np.clip(prediction.wheel_angle, -limit, limit)) if finite else 0.0
        with self.lock:
            self.last_frame = time.monotonic()
            if self.stopped_by_watchdog:
                self.stopped_by_watchdog = False
                self.get_logger().info("camera frames again: commanding")
            if not self.active:
                return
            if not finite:
                self.window["nonfinite"] += 1
                self.get_logger().error("non-finite prediction: vehicle stopped", throttle_duration_sec=1.0)
                predictor.reset()
            elif angle != prediction.wheel_angle:
                self.window["clamped"] += 1
            if self.enabled:
                speed = float(self.p["cruise_speed"]) if finite else 0.0
                self._publish_command(msg.header, speed, angle)
            self.publishers_["steering_angle"].publish(steering_message(msg.header, prediction.wheel_angle))
        if prediction.attention is None or not finite:
            return
        self.publishers_["map"].publish(
            fill_image(Image(), msg.header, prediction.attention.astype(np.float32), "32FC1")
        )
        if self.p["publish_overlay"]:
            overlay_msg, bgr = self._overlay_message(msg.header, *rgb.shape[:2])
            cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=bgr)
            top, bottom, left, right = predictor.preprocessing.model_box(*rgb.shape[:2])
            # outside the model's box the attention is 0: only the box is blended, the map stretched onto it
            box = bgr[top:bottom, left:right]
            overlay(box, prediction.attention, self.p["overlay_alpha"], self.p["colormap"], bgr=True, out=box)
            self.publishers_["overlay"].publish(overlay_msg)

    def _overlay_message(self, header, height: int, width: int) -> tuple[Image, np.ndarray]:
        """The overlay message and an (H, W, 3) view of its data, reused while the camera size stays.

        Publishing copies the message, so one buffer serves every frame; a fresh 1 MB array per
        frame costs more in page faults than the blending itself.
        """
        if self._overlay is None or (self._overlay.height, self._overlay.width) != (height, width):
            self._overlay = fill_image(Image(), header, np.zeros((height, width, 3), np.uint8), "bgr8")
        self._overlay.header = header
        return self._overlay, np.frombuffer(self._overlay.data, np.uint8).reshape(height, width, 3)

    # -- diagnostics --------------------------------------------------------------------------
    @staticmethod
    def _new_window() -> dict:
        return {**dict.fromkeys(COUNTERS, 0), "latency_ms": deque(maxlen=10_000), "start": time.monotonic()}

    def _publish_diagnostics(self) -> None:
        """Counts and rates over the last window; totals since start. STALE while not commanding."""
        window, self.window = self.window, self._new_window()
        seconds = max(time.monotonic() - window["start"], 1e-6)
        for key in COUNTERS:
            self.totals[key] += window[key]
        latency = np.array(window["latency_ms"]) if window["latency_ms"] else np.zeros(1)
        status = DiagnosticStatus(name=f"{self.get_name()}: inference", hardware_id=str(self.p["device"]))
        with self.lock:
            active, enabled, silent = self.active, self.enabled, self.stopped_by_watchdog
        if not active:
            status.level, status.message = DiagnosticStatus.STALE, "inactive: not commanding"
        elif silent:
            status.level, status.message = DiagnosticStatus.ERROR, "camera silent: vehicle stopped"
        elif window["nonfinite"]:
            status.level, status.message = DiagnosticStatus.ERROR, "non-finite predictions: vehicle stopped"
        elif window["frames_in"] == 0:
            status.level, status.message = DiagnosticStatus.STALE, "no frames in this window"
        elif window["bad"] or window["dropped"]:
            status.level, status.message = DiagnosticStatus.WARN, "bad or dropped frames in this window"
        else:
            status.level, status.message = DiagnosticStatus.OK, "ok" if enabled else "ok, commands paused"
        values = {
            **{k: window[k] for k in COUNTERS},
            "input_hz": f"{window['frames_in'] / seconds:.2f}",
            "output_hz": f"{window['frames_out'] / seconds:.2f}",
            "latency_p50_ms": f"{np.percentile(latency, 50):.2f}",
            "latency_p99_ms": f"{np.percentile(latency, 99):.2f}",
            "enabled": enabled,
            **{f"total_{k}": v for k, v in self.totals.items()},
        }
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(array)

    def close(self) -> None:
        self._running = False
        with self._wake:
            self._wake.notify()
        self._worker.join(timeout=2.0)
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    init_keeping_signals(args)  # the context stays up for the last zero-speed command
    try:
        node = SteeringNode()
    except (StartupError, rclpy_implementation.RCLError) as error:
        print(f"qattn_steering: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    except KeyboardInterrupt:  # Ctrl-C while loading: nothing commanded yet
        rclpy.try_shutdown()
        return 130
    try:
        if node.p["autostart"]:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise StartupError(node.configure_error)
            node.trigger_activate()
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.1)  # returns to Python often enough to take a signal
    except StartupError as error:
        print(f"qattn_steering: {error}", file=sys.stderr)
        node.close()
        rclpy.try_shutdown()
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    node.on_shutdown(None)  # the last zero-speed command, while the context is still up
    time.sleep(0.2)  # let it leave
    node.close()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
