"""qattn_simulator: a road the steering node can drive, in closed loop.

  ros2 run qattn_ros simulator --ros-args -p track_seed:=1000 -p length_km:=2.0

Renders the synthetic road from the car's pose (`qattn_ros.sim`), publishes it as the camera,
and moves the car with the commands it receives: `cmd_vel` (geometry_msgs/TwistStamped;
front-wheel angle = atan(wheelbase * angular.z / linear.x)) or `drive`
(ackermann_msgs/AckermannDriveStamped, where installed).

Publishes, stamped with the simulation time: `image` (rgb8) or `image/compressed` (jpeg),
`/clock`, `ground_truth/steering_angle` (sensor_msgs/JointState `front_wheel`: what pure
pursuit on the visible road would command, the training label), `sim/pose`
(geometry_msgs/PoseStamped in `odom`), `sim/lane` (geometry_msgs/Vector3Stamped: x = lateral
offset m left of the lane centre, y = heading error rad, z = road curvature 1/m), and TF
`odom -> base_link` where tf2_msgs is installed (`/tf`).

mode `lockstep`: the next step is taken when the command for the last frame (same stamp) has
come: deterministic on any machine. `/clock` then says the time of the last frame answered
(it moves on once the command is in), so a command a driver sends on its own — a watchdog's
stop, stamped with the driver's clock — can never pass for the answer to the frame in flight.
mode `realtime`: steps at `rate` Hz with the newest command, `/clock` with each frame; a
command stamped for an earlier frame is counted late. Either way, no command for
`command_timeout` s stops the car (said once, counted) until commands return. NaN or infinite
commands brake; out-of-range ones are clamped; both are counted. The run ends at the end of
the track (complete), after `duration` s of simulated time (complete), when the car has not
moved `stall_distance` m in `stall_timeout` s of simulated time (stalled: a zero speed, a
paused or broken driver), when no driver publishes commands for `command_timeout` s (driver
gone) or on Ctrl-C; it then writes the closed-loop report to `report` (if set) and exits, 0
only when complete.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped, Vector3Stamped
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

from ..core.atomic import atomic_path
from ..core.errors import ConfigError
from ..sim.report import plot_offset, plot_track, write_summary
from ..sim.track import generate_track
from ..sim.world import RoadSim, SimConfig
from . import signals
from .conventions import LATCHED, init_keeping_signals, stamp_from_ns
from .messages import fill_image, steering_message

try:
    from ackermann_msgs.msg import AckermannDriveStamped
except ImportError:  # optional: not on PyPI
    AckermannDriveStamped = None
try:
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
except ImportError:  # tf2_msgs comes with a ROS install, not with the PyPI wheels
    TFMessage = None

DEFAULTS = {
    "track_seed": 1000,
    "length_km": 2.0,
    "duration": 0.0,
    "mode": "lockstep",
    "rate": 20.0,
    "width": 320,
    "height": 160,
    "transport": "raw",
    "lane_width": 3.6,
    "intervention_offset": 1.0,
    "wheelbase": SimConfig.wheelbase,
    "max_steering": SimConfig.max_steering,
    "max_speed": SimConfig.max_speed,
    "steering_delay": SimConfig.steering_delay,
    "command_timeout": 1.0,
    "stall_timeout": 10.0,
    "stall_distance": 0.5,
    "startup_timeout": 60.0,
    "frame_id": "camera",
    "odom_frame": "odom",
    "base_frame": "base_link",
    "report": "",
}
CLOCK_START_S = 1.0
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def wheel_angle(twist, wheelbase: float, previous: float) -> float:
    """Front-wheel angle of a Twist (bicycle model); at zero speed the yaw rate says nothing: keep `previous`."""
    speed, yaw_rate = twist.linear.x, twist.angular.z
    if not (math.isfinite(speed) and math.isfinite(yaw_rate)):
        return math.nan
    if abs(speed) < 1e-6:
        return previous
    return math.atan(wheelbase * yaw_rate / speed)


class Simulator(Node):
    def __init__(self) -> None:
        super().__init__("qattn_simulator")
        p = {name: self.declare_parameter(name, value).value for name, value in DEFAULTS.items()}
        self.p = p
        if p["mode"] not in ("lockstep", "realtime") or p["transport"] not in ("raw", "compressed"):
            raise ConfigError(f"parameters mode={p['mode']!r} (lockstep | realtime), transport={p['transport']!r} "
                              "(raw | compressed)")  # fmt: skip
        if (not 0 < p["length_km"] <= 1000 or min(p["command_timeout"], p["stall_timeout"], p["stall_distance"]) <= 0
                or p["duration"] < 0):  # fmt: skip
            raise ConfigError("parameters length_km must be in (0, 1000], command_timeout, stall_timeout and "
                              "stall_distance > 0, duration >= 0")  # fmt: skip
        config = SimConfig(rate=p["rate"], height=p["height"], width=p["width"], lane_width=p["lane_width"],
                           intervention_offset=p["intervention_offset"], wheelbase=p["wheelbase"],
                           max_steering=p["max_steering"], max_speed=p["max_speed"],
                           steering_delay=p["steering_delay"])  # fmt: skip
        self.sim = RoadSim(generate_track(p["track_seed"], 1000 * p["length_km"]), config)
        compressed = p["transport"] == "compressed"
        self.pub_image = self.create_publisher(CompressedImage if compressed else Image,
                                               "image/compressed" if compressed else "image", RELIABLE)  # fmt: skip
        self.pub_clock = self.create_publisher(Clock, "/clock", RELIABLE)
        self.pub_truth = self.create_publisher(type(steering_message(Header(), 0.0)), "ground_truth/steering_angle",
                                               RELIABLE)  # fmt: skip
        self.pub_pose = self.create_publisher(PoseStamped, "sim/pose", RELIABLE)
        self.pub_lane = self.create_publisher(Vector3Stamped, "sim/lane", RELIABLE)
        self.pub_status = self.create_publisher(String, "sim/status", LATCHED)
        self.pub_tf = self.create_publisher(TFMessage, "/tf", RELIABLE) if TFMessage is not None else None
        self.create_subscription(TwistStamped, "cmd_vel", self._on_twist, RELIABLE)
        if AckermannDriveStamped is not None:
            self.create_subscription(AckermannDriveStamped, "drive", self._on_drive, RELIABLE)
        self.command: tuple[tuple[int, int], float, float] | None = None  # (stamp, speed, wheel angle)
        self.last_command_wall = time.monotonic()
        self.counts = {"command_timeouts": 0, "late_commands": 0, "stopped_steps": 0}
        self.stopped = False
        self.started = time.monotonic()
        self.ended = ""  # why the run ended early ("" while it may go on)
        self.progress = (0.0, 0.0)  # (sim time, distance) when the car last moved stall_distance
        self.driver_seen = time.monotonic()

    # -- commands -----------------------------------------------------------------------------
    def _on_twist(self, msg: TwistStamped) -> None:
        previous = self.command[2] if self.command else 0.0
        angle = wheel_angle(msg.twist, self.p["wheelbase"], previous)
        self.command = ((msg.header.stamp.sec, msg.header.stamp.nanosec), msg.twist.linear.x, angle)
        self.last_command_wall = time.monotonic()

    def _on_drive(self, msg) -> None:
        self.command = ((msg.header.stamp.sec, msg.header.stamp.nanosec), msg.drive.speed, msg.drive.steering_angle)
        self.last_command_wall = time.monotonic()

    # -- one step ---------------------------------------------------------------------------
    def stamp(self) -> Header:
        # the clock starts at CLOCK_START_S: a stop a driver's watchdog sends before the first /clock is
        # stamped 0 and must not pass for the answer to the first frame
        return Header(frame_id=self.p["frame_id"], stamp=stamp_from_ns(round((self.sim.time + CLOCK_START_S) * 1e9)))

    def publish_frame(self) -> tuple[int, int]:
        sim, header = self.sim, self.stamp()
        frame = sim.frame()
        if self.p["mode"] == "realtime":
            self.pub_clock.publish(Clock(clock=header.stamp))
        self.pub_truth.publish(steering_message(header, frame.steering))
        x, y, yaw = sim.track.pose(sim.s, sim.n, sim.theta)
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = header.stamp, self.p["odom_frame"]
        pose.pose.position.x, pose.pose.position.y = x, y
        pose.pose.orientation.z, pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        self.pub_pose.publish(pose)
        lane = Vector3Stamped(header=header)
        lane.vector.x, lane.vector.y, lane.vector.z = sim.n, sim.theta, float(sim.track.curvature_at(sim.s))
        self.pub_lane.publish(lane)
        if self.pub_tf is not None:
            tf = TransformStamped()
            tf.header.stamp, tf.header.frame_id, tf.child_frame_id = header.stamp, self.p["odom_frame"], \
                self.p["base_frame"]  # fmt: skip
            tf.transform.translation.x, tf.transform.translation.y = x, y
            tf.transform.rotation = pose.pose.orientation
            self.pub_tf.publish(TFMessage(transforms=[tf]))
        if self.p["transport"] == "compressed":
            msg = CompressedImage(header=header, format="jpeg")
            msg.data = cv2.imencode(".jpg", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))[1].tobytes()
        else:
            msg = fill_image(Image(), header, frame.image, "rgb8")
        self.pub_image.publish(msg)
        return header.stamp.sec, header.stamp.nanosec

    def wait_for_command(self, stamp: tuple[int, int]) -> None:
        """Lockstep: until the command for this frame comes, or command_timeout (wall) s pass; then the clock
        moves on to this frame."""
        end = time.monotonic() + self.p["command_timeout"]
        while rclpy.ok() and time.monotonic() < end:
            if self.command is not None and self.command[0] == stamp:
                break
            rclpy.spin_once(self, timeout_sec=0.002)
        self.pub_clock.publish(Clock(clock=Time(sec=stamp[0], nanosec=stamp[1])))

    def advance(self, stamp: tuple[int, int]) -> None:
        """Step with the command for this frame (lockstep) or the newest one (real time); none for
        command_timeout s: the car stops (said once)."""
        now, command = time.monotonic(), self.command
        if self.p["mode"] == "lockstep":
            usable = command is not None and command[0] == stamp
            timed_out = not usable  # wait_for_command waited command_timeout for it
        else:
            timed_out = now - self.last_command_wall > self.p["command_timeout"]  # since the start without any
            usable = command is not None and not timed_out
            self.counts["late_commands"] += int(usable and command[0] != stamp)
        if not usable:
            self.counts["stopped_steps"] += 1
            if timed_out and not self.stopped:
                self.stopped = True
                self.counts["command_timeouts"] += 1
                self.get_logger().error(f"no command for {self.p['command_timeout']} s: car stopped")
            self.sim.step(0.0, self.sim.delta)
            return
        if self.stopped:
            self.stopped = False
            self.get_logger().info("commands again: driving")
        _, speed, angle = command
        self.sim.step(speed, angle)

    def check_progress(self) -> None:
        """The car stalled (stall_distance m not made in stall_timeout s of sim time), or the driver is gone."""
        sim, (since, where) = self.sim, self.progress
        if sim.s - where >= self.p["stall_distance"]:
            self.progress = (sim.time, sim.s)
        elif sim.time - since >= self.p["stall_timeout"] - 1e-9:
            self.ended = f"stalled: the car moved {sim.s - where:.2f} m in {self.p['stall_timeout']} s of sim time"
        if self.count_publishers("cmd_vel") or self.count_publishers("drive"):
            self.driver_seen = time.monotonic()
        elif time.monotonic() - self.driver_seen > self.p["command_timeout"]:
            self.ended = f"driver gone: nothing publishes cmd_vel or drive for {self.p['command_timeout']} s"

    def wait_for_driver(self) -> None:
        """The camera needs a subscriber and cmd_vel a publisher before the first frame."""
        end = time.monotonic() + self.p["startup_timeout"]
        while rclpy.ok() and time.monotonic() < end:
            if self.count_subscribers(self.pub_image.topic_name) and self.count_publishers("cmd_vel"):
                return rclpy.spin_once(self, timeout_sec=0.5)
            rclpy.spin_once(self, timeout_sec=0.05)
        raise ConfigError(f"no driver after {self.p['startup_timeout']} s: nobody subscribes to "
                          f"{self.pub_image.topic_name} and publishes cmd_vel; is qattn_steering running?")  # fmt: skip

    def run(self) -> None:
        self.wait_for_driver()
        self.publish_status("driving")
        period, due = 1.0 / self.p["rate"], time.monotonic()
        self.started = self.last_command_wall = time.monotonic()
        while not self.finished() and not self.ended and rclpy.ok():
            stamp = self.publish_frame()
            if self.p["mode"] == "lockstep":
                self.wait_for_command(stamp)
            else:
                due += period
                while time.monotonic() < due:
                    rclpy.spin_once(self, timeout_sec=max(0.0, due - time.monotonic()))
            self.advance(stamp)
            self.check_progress()
            if self.sim.steps % round(self.p["rate"]) == 0:
                self.publish_status("driving")

    def finished(self) -> bool:
        """The end of the track, or `duration` s of simulated time (when set)."""
        return self.sim.done or (self.p["duration"] > 0 and self.sim.time >= self.p["duration"] - 1e-9)

    def summary(self) -> dict:
        wall = time.monotonic() - self.started
        return {**self.sim.log.summary(), **self.sim.counts, **self.counts,
                "steps_per_s": self.sim.steps / wall if wall > 0 else 0.0}  # fmt: skip

    def publish_status(self, state: str) -> None:
        self.pub_status.publish(String(data=json.dumps({"state": state, **self.summary()})))

    def write_report(self, complete: bool) -> None:
        if not self.p["report"]:
            return
        out = Path(self.p["report"])
        out.mkdir(parents=True, exist_ok=True)
        summary = {**self.summary(), "complete": complete, "ended": self.ended or ("complete" if complete else "")}
        meta = {"track_seed": self.p["track_seed"], "mode": self.p["mode"], "rate": self.p["rate"],
                "camera": f"{self.p['width']}x{self.p['height']}"}  # fmt: skip
        write_summary({"node": summary}, out, meta)
        plot_track({"node": self.sim}, out / "track.png")
        plot_offset({"node": self.sim}, out / "offset.png")
        log = self.sim.log
        columns = np.column_stack([log.time, log.distance, log.offset, log.heading, log.steering, log.x, log.y])
        with atomic_path(out / "drive.csv") as partial:
            np.savetxt(partial, columns, delimiter=",", header="time,distance,offset,heading,steering,x,y",
                       comments="", fmt="%.9g")  # fmt: skip


def main(args: list[str] | None = None) -> int:
    init_keeping_signals(args)
    node = None
    try:
        node = Simulator()
        node.run()
        complete = node.finished()
    except ConfigError as error:
        print(f"qattn_simulator: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        if node is None:  # Ctrl-C while starting: nothing driven yet
            rclpy.try_shutdown()
            return 130
        complete, node.ended = False, f"interrupted: stopped on {', '.join(signals.received()) or 'shutdown'}"
    signals.stopping()  # the report is written whatever signal comes next
    interrupted = node.ended.startswith("interrupted")
    if node.ended and not complete:
        (node.get_logger().info if interrupted else node.get_logger().error)(f"ended early: {node.ended}")
    node.publish_status("done" if complete else node.ended.split(":")[0])
    node.write_report(complete)
    s = node.summary()
    node.get_logger().info(f"{'done' if complete else node.ended.split(':')[0]}: {s['km']:.2f} km, autonomy "
                           f"{100 * s['autonomy']:.1f} %, {s['interventions']} interventions, "
                           f"{s['steps_per_s']:.1f} steps/s")  # fmt: skip
    time.sleep(0.3)  # let the last status leave
    node.destroy_node()
    rclpy.try_shutdown()
    return 0 if complete or interrupted else 1  # stopped on purpose: not a failure


if __name__ == "__main__":
    sys.exit(main())
