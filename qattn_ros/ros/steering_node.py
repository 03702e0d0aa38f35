"""qattn_steering: camera image in; steering command, attention overlay and diagnostics out.

A managed (lifecycle) node:
  configure   checks every parameter, loads and verifies the checkpoint, creates the publishers
  activate    subscribes to the camera and starts commanding (a recurrent model starts afresh)
  deactivate  publishes a zero-speed command and stops commanding
  cleanup     frees the model (and its GPU memory)
  shutdown    a last zero-speed command; SIGINT and SIGTERM take this transition too (`finalized`)
`autostart` (default true) configures and activates at start; `~/enable` (std_srvs/SetBool) pauses commands.

The safety rules live in `qattn_ros.rules.command_gate` (clamp, finite check, watchdog, enable, lifecycle,
recurrent-state resets), the diagnostics level in `qattn_ros.rules.node_status`; this node is their transport.
A camera of another aspect than the checkpoint's is cropped to it (`camera_fit`); one that cannot be mapped is
refused at configure (`camera_width`/`camera_height` given) or at its first frame (zero speed, ERROR), or with
`accept_camera_mismatch` used with one warning and a WARN in every diagnostics window.

A worker thread runs the model on the newest frame (keep last 1, QoS as the camera's publishers offer:
`image_qos`), so services answer while frames stream; later stop signals wait for the first (`signals`).
Every output carries the input header; topics and types: `qattn_ros.rules.interfaces` (docs/node.md).
"""

from __future__ import annotations

import sys
import threading
import time

import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_srvs.srv import SetBool

from ..core.device import pick_device
from ..core.errors import CheckpointError, ConfigError
from ..core.units import yaw_rate
from ..inference.predictor import CameraMismatch, SteeringPredictor
from ..rules.command_gate import STOP, Camera, Command, CommandGate, Lifecycle, drive_command, drive_message
from ..rules.node_status import FrameWindow, NewestFrame, status_of, window_values
from ..rules.steering_params import DEFAULTS, PARAMS, choice_error  # noqa: F401 (DEFAULTS: read here by tests and benchmarks)
from . import signals
from .attention_images import AttentionImages
from .conventions import create_node, init_keeping_signals
from .heap import keep_heap
from .image_qos import CHECK_PERIOD, ImageSubscription
from .messages import BadFrame, UnsupportedEncoding, compressed_to_rgb, image_to_rgb, steering_message
from .node_parameters import StartupError, declare_parameters

try:
    from ackermann_msgs.msg import AckermannDriveStamped
except ImportError:  # optional: not on PyPI, present on a ROS 2 install that has it
    AckermannDriveStamped = None


class SteeringNode(LifecycleNode):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("qattn_steering", **node_kwargs)
        self.p = declare_parameters(self, PARAMS, choice_error)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.predictor: SteeringPredictor | None = None
        self.configure_error = ""  # why the last configure failed
        command_type = TwistStamped if self.p["cmd_vel_type"] == "twist_stamped" else Twist
        # made once and kept to the end: a zero-speed command can leave from every state, configuring included
        self.publishers_: dict[str, object] = {"cmd_vel": self.create_publisher(command_type, "cmd_vel", 10)}
        if AckermannDriveStamped is not None:
            self.publishers_["drive"] = self.create_publisher(AckermannDriveStamped, "drive", 10)
        self.subscription: ImageSubscription | None = None
        self.lock = threading.Lock()  # the gate, and every command: the worker, the watchdog, transitions, services
        self.gate = CommandGate(self.p["camera_timeout"], self.p["max_frame_gap"])
        self.camera_note, self.camera_refused = "", False  # the camera-geometry problem, for diagnostics
        self.window = FrameWindow()
        self.slot = NewestFrame(self.window)  # the subscription puts, the worker takes
        self.attention_images = AttentionImages()
        self._worker = threading.Thread(target=self._work, name="qattn_inference", daemon=True)
        self._worker.start()
        self.create_service(SetBool, "~/enable", self._on_enable)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # with use_sim_time too: a stopped /clock must not stop them
        self.create_timer(min(0.05, self.p["camera_timeout"] / 4), self._watchdog, clock=steady)
        self.create_timer(self.p["diagnostics_period"], self._publish_diagnostics, clock=steady)
        self.create_timer(CHECK_PERIOD, lambda: self.subscription and self.subscription.update(), clock=steady)
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
            self.predictor.fit_camera(p["camera_fit"], p["crop_anchor"], p["accept_camera_mismatch"])
            if p["camera_width"] and p["camera_height"]:  # a camera the checkpoint cannot take is refused here
                self._note_camera(self.predictor.fit(p["camera_height"], p["camera_width"]).mismatch)
        except (CheckpointError, ConfigError, CameraMismatch) as error:
            return self._configure_failed(str(error))
        if p["keep_heap"] and not keep_heap():
            self.get_logger().warning("keep_heap: not a glibc process, per-frame buffers are allocated anew")
        info = self.predictor.info
        self.get_logger().info(
            f"{info.model.variant} checkpoint {p['checkpoint']} on {device} (device={p['device']}, backend="
            f"{p['backend']}); steering unit "
            f"{info.steering_unit}, positive {'left' if info.positive_is_left else 'right'}, converted to the "
            f"front-wheel angle with the checkpoint's {info.vehicle}; trained on {self.predictor.camera.describe()} "
            f"frames, camera_fit={p['camera_fit']}"
        )
        if shipped := self.predictor.shipped:
            self.get_logger().info(f"shipped model {shipped.name}: {shipped.summary} (card: {shipped.card})")
        for note in info.notes:
            self.get_logger().warning(note)
        # reliable keep last 1 matches reliable and best-effort viewers alike, and never queues
        reliability = ReliabilityPolicy.BEST_EFFORT if p["reliability"] == "best_effort" else ReliabilityPolicy.RELIABLE
        image_qos = QoSProfile(depth=1, reliability=reliability)
        self.publishers_ |= {
            "steering_angle": self.create_publisher(JointState, "steering_angle", 10),
            "overlay": self.create_publisher(Image, "attention/overlay", image_qos),
            "map": self.create_publisher(Image, "attention/map", image_qos),
        }
        with self.lock:
            self.gate.configure()
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        self.configure_error = reason
        self.get_logger().error(f"configure failed: {reason}")
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        raw = self.p["transport"] == "raw"
        self.decode = image_to_rgb if raw else compressed_to_rgb
        self.subscription = ImageSubscription(self, Image if raw else CompressedImage,
                                              "image" if raw else "image/compressed", self._on_image,
                                              self.p["reliability"])  # fmt: skip
        with self.lock:
            self.gate.activate(time.monotonic())
            enabled = self.gate.enabled
        paused = "" if enabled else " (commands paused by ~/enable false until ~/enable true)"
        self.get_logger().info(f"active: commanding from {self.subscription.topic_name}{paused}")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stand_down("deactivated", CommandGate.deactivate)
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stand_down("shutting down", CommandGate.finalize)
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stand_down("error", CommandGate.deactivate)
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stand_down(self, why: str, transition) -> None:
        """Stop commanding: a zero-speed command, then nothing more from any frame in flight."""
        with self.lock:
            was_commanding = transition(self.gate)
            command = self.publishers_.get("cmd_vel")
            if command is not None:
                self._publish_command(None, STOP)
        if command is not None:  # before anything is torn down: the stop must reach every reliable subscriber
            command.wait_for_all_acked(Duration(seconds=1.0))
        if self.subscription is not None:
            self.subscription.destroy()
            self.subscription = None
        if was_commanding or command is not None:
            self.get_logger().info(f"{why}: zero-speed command sent")

    def _release(self) -> None:
        with self.lock:
            publishers = {k: v for k, v in self.publishers_.items() if k not in ("cmd_vel", "drive")}
            self.publishers_ = {k: v for k, v in self.publishers_.items() if k not in publishers}
            if self.gate.state is not Lifecycle.FINALIZED:
                self.gate.cleanup()
        for publisher in publishers.values():
            self.destroy_publisher(publisher)
        if self.predictor is not None:
            self.predictor.close()
            self.predictor = None

    def finalize(self) -> None:
        """The shutdown transition, as a lifecycle manager sees it (`finalized`), after the last stop."""
        try:
            self.trigger_shutdown()
        except rclpy_implementation.RCLError:  # already finalized, or in a transition: the stop regardless
            self.on_shutdown(None)

    # -- parameters and services --------------------------------------------------------------
    def _validate_parameters(self, params) -> SetParametersResult:
        """Runtime changes follow the start-up rules: ranges (in the descriptors) and choices (here)."""
        for param in params:
            if problem := choice_error(param.name, param.value):
                return SetParametersResult(successful=False, reason=problem)
        for param in params:
            if param.name in self.p:
                self.p[param.name] = param.value
        return SetParametersResult(successful=True)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        with self.lock:
            self.gate.set_enabled(request.data)
            if not request.data and "cmd_vel" in self.publishers_:
                self._publish_command(None, STOP)
            state = self.gate.state
        response.success = True
        response.message = "commands enabled" if request.data else "commands paused: zero-speed command sent"
        if state is not Lifecycle.ACTIVE:
            response.message += f" (node {state.value}: holds from activation)"
        self.get_logger().info(response.message)
        return response

    # -- commands -----------------------------------------------------------------------------
    def _publish_command(self, stamp, command: Command) -> None:
        """cmd_vel (and drive) for a command; the caller holds the lock. `stamp` None: now."""
        stamp = stamp if stamp is not None else self.get_clock().now().to_msg()
        twist = Twist()
        twist.linear.x, twist.angular.z = command.speed, yaw_rate(command.speed, command.angle, self.p["wheelbase"])
        if self.p["cmd_vel_type"] == "twist_stamped":
            message = TwistStamped(twist=twist)
            message.header.stamp, message.header.frame_id = stamp, self.p["base_frame"]
        else:
            message = twist
        self.publishers_["cmd_vel"].publish(message)
        if "drive" in self.publishers_:
            drive = drive_message(AckermannDriveStamped, stamp, self.p["base_frame"], command)
            self.publishers_["drive"].publish(drive)

    def _clock_ns(self) -> int | None:
        """The ROS clock on sim time (the watchdog tells a stopped replay from a dead camera by it)."""
        return self.get_clock().now().nanoseconds if self.get_parameter("use_sim_time").value else None

    def _watchdog(self) -> None:
        """No frame for camera_timeout s while commanding: zero speed, repeated until frames return."""
        with self.lock:
            if not self.gate.commanding:
                return
            stop, news = self.gate.watchdog.check(time.monotonic(), self._clock_ns())
            if stop:
                self._publish_command(None, STOP)
        if news is Camera.SILENT:  # (rclpy: one severity per call site)
            self.get_logger().error(f"no camera frame for {self.p['camera_timeout']} s: vehicle stopped")
        elif news is Camera.PAUSED:
            self.get_logger().info(f"{news.value}: zero-speed command sent")
        elif news is Camera.WAITING:
            self.get_logger().warning(f"{news.value}: zero-speed command sent")

    def _note_camera(self, mismatch: str, refused: bool = False, remedy: str = "set accept_camera_mismatch to run on it"
                     ) -> None:  # fmt: skip
        """Say a camera problem (its geometry, an unreadable encoding) once when it appears, again when it changes;
        diagnostics repeat it every window until a usable frame clears it."""
        if mismatch and mismatch != self.camera_note:
            if refused:
                self.get_logger().error(f"camera refused: {mismatch}; {remedy}")
            else:
                self.get_logger().warning(f"camera geometry mismatch accepted (accept_camera_mismatch): {mismatch}")
        self.camera_note, self.camera_refused = mismatch, refused

    # -- frames -------------------------------------------------------------------------------
    def _on_image(self, msg) -> None:
        self.slot.put((msg, time.monotonic(), self.gate.epoch))

    def _work(self) -> None:
        while (item := self.slot.take()) is not None:
            msg, received, epoch = item
            try:
                if self._process(msg, epoch):
                    self.window.count("frames_out", (time.monotonic() - received) * 1000)
            except UnsupportedEncoding as error:  # every frame of this camera will be: stop, and say so as ERROR
                self.window.count("bad")
                with self.lock:
                    if self.gate.commanding:
                        self._publish_command(msg.header.stamp, STOP)
                self._note_camera(str(error), refused=True, remedy="vehicle stopped")
            except BadFrame as error:
                self.window.count("bad")
                self.get_logger().warning(f"bad frame skipped: {error}", throttle_duration_sec=1.0)
            except CameraMismatch as error:
                self.window.count("bad")
                with self.lock:
                    if self.gate.commanding:
                        self._publish_command(msg.header.stamp, STOP)
                self._note_camera(str(error), refused=True)
            except Exception as error:  # keep running past anything a single frame can cause
                self.window.count("bad")
                self.get_logger().error(f"frame failed: {type(error).__name__}: {error}", throttle_duration_sec=1.0)

    def _process(self, msg, epoch: int) -> bool:
        """One frame through the model; its outputs leave only under the activation it came in (True if so)."""
        predictor = self.predictor
        if predictor is None:
            return False
        rgb = self.decode(msg, self.p["max_pixels"])
        self._note_camera(predictor.fit(*rgb.shape[:2]).mismatch)
        with self.lock:
            if not self.gate.admits(epoch):
                return False
            stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            if self.gate.sequence.starts_anew(stamp_ns):
                predictor.reset()  # a new sequence: a recurrent state from before would mislead
        prediction = predictor.predict(rgb)
        command = drive_command(prediction.wheel_angle, prediction.steering, self.p["cruise_speed"],
                                self.p["max_steering_angle"])  # fmt: skip
        images = []
        if command.finite:  # nothing from a broken prediction
            colormap = self.p["colormap"] if self.p["publish_overlay"] else None
            box = predictor.model_box(*rgb.shape[:2])
            images = self.attention_images.build(msg.header, rgb, prediction.attention, box, self.p["overlay_alpha"],
                                                 colormap, self.p["overlay_max_width"])  # fmt: skip
        with self.lock:
            if not self.gate.admits(epoch):  # deactivated meanwhile: nothing after the stop
                return False
            if self.gate.watchdog.frame(time.monotonic(), self._clock_ns(), stamp_ns) in (Camera.SILENT, Camera.PAUSED):
                self.get_logger().info("camera frames again: commanding")
            if not command.finite:
                self.window.count("nonfinite")
                self.get_logger().error("non-finite prediction: vehicle stopped", throttle_duration_sec=1.0)
                predictor.reset()
            elif command.clamped:
                self.window.count("clamped")
            if self.gate.enabled:
                self._publish_command(msg.header.stamp, command)
            self.publishers_["steering_angle"].publish(steering_message(msg.header, prediction.wheel_angle))
            for name, image in images:
                self.publishers_[name].publish(image)
        return True

    # -- diagnostics --------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        """Counts and rates over the last window; totals since start. STALE while not commanding."""
        window = self.window.swap()
        with self.lock:
            state, enabled, camera = self.gate.state, self.gate.enabled, self.gate.watchdog.state
        level, message = status_of(state, enabled, camera, window.counts, self.camera_note, self.camera_refused)
        status = DiagnosticStatus(name=f"{self.get_name()}: inference", hardware_id=str(self.p["device"]),
                                  level=bytes([level]), message=message)  # fmt: skip
        values = window_values(window, self.window.totals, enabled, camera)
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(array)

    def close(self) -> None:
        self.slot.close()
        self._worker.join(timeout=2.0)
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """0 after an orderly stop (a signal or a lifecycle shutdown: the zero-speed command sent), 1 if it could not
    start, 130 if stopped before it was up."""
    init_keeping_signals(args)  # the context stays up for the last zero-speed command
    node = create_node(SteeringNode, (StartupError, rclpy_implementation.RCLError), "qattn_steering")
    if isinstance(node, int):
        return node
    try:
        if node.p["autostart"]:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise StartupError(node.configure_error)
            node.trigger_activate()
        while rclpy.ok() and not (node.p["exit_when_finalized"] and node.gate.state is Lifecycle.FINALIZED):
            rclpy.spin_once(node, timeout_sec=0.1)  # returns to Python often enough to take a signal
            if node.p["stop_with_parent"] and signals.parent_gone():
                node.get_logger().error("the process that started this node has ended (launch killed, supervisor "
                                        "gone): stopping the vehicle")  # fmt: skip
                break
    except StartupError as error:
        signals.stopping()
        node.finalize()
        node.close()
        rclpy.try_shutdown()
        print(f"qattn_steering: {error}", file=sys.stderr)  # the last line
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        node.get_logger().info(f"stopping on {', '.join(signals.received()) or 'shutdown'}")
    signals.stopping()
    if node.gate.state is not Lifecycle.FINALIZED:
        node.finalize()  # the last zero-speed command, then `finalized`, while the context is still up
    time.sleep(0.2)  # let them leave
    node.close()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
