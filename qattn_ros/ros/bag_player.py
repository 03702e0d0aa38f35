"""qattn_bag_player: play a recorded drive into the graph, with its ground truth and its clock.

  ros2 run qattn_ros bag_player --ros-args -p source:=HMB_1.bag -p mode:=lockstep

`source` is any dataset the readers open: a Udacity Challenge 2 ROS 1 bag, a ROS 2 bag folder
(sqlite3 or mcap), the Challenge 2 test layout, an udacity-driving-reader folder or a simulator
log, as a path or a YAML mapping {kind: ..., ...} (`bag_camera_topic` / `bag_steering_topic`
name a ROS 2 bag's topics). `ros2 bag play` needs a ROS install and plays no ROS 1 bag.

Publishes, each with the recorded header stamp: `image` (sensor_msgs/Image rgb8, as decoded by
the readers that training used), `ground_truth/steering_angle` (sensor_msgs/JointState
`front_wheel`: the recorded steering as a front-wheel angle, rad, positive left), `/clock`
(the frame's stamp, for nodes with use_sim_time) and `replay/status` (std_msgs/String, JSON,
latched: the first frame's index in the source, frames to play, state).

`replay/frame` (std_msgs/Header: the frame's stamp, frame_id = its index in the source) lets
the evaluator name each frame by where it is in the recording, whatever was lost before it.

mode `lockstep`: the next frame goes out when `replay/ack` (std_msgs/Header, from the
evaluator) has answered for the last one. Delivery is reliable and keeps every sample, so
nothing is ever sent twice and no timing decides anything: every run gives the same result on
any machine, under any discovery range or load. A frame the evaluator holds (`frame_id`
"held": it is in, the evaluation queue is full) is waited for as long as the evaluator is in
the graph; one not even held after `answer_timeout` s means a dead graph (a node gone or not
active) and ends the replay, saying which. mode `realtime`: frames go out at the recorded pace
times `rate`; whatever the consumers miss is theirs to count. `start` and `duration` (s of
recording) select a stretch. `steering_ratio` and `wheelbase` convert the recorded steering to
a wheel angle; the status says them and the recording's unit, and the evaluator converts back
with the same before labelling the frame as offline evaluation would.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String
from tqdm import tqdm

from ..core.errors import ConfigError, DataError
from ..core.units import DEFAULT_VEHICLE, VehicleGeometry, to_wheel_angle
from ..data.record import Record
from ..data.sources import open_source, spec_from_text
from . import signals
from .conventions import LATCHED, init_keeping_signals, stamp_from_ns
from .messages import fill_image, steering_message

DEFAULTS = {
    "source": "",
    "bag_camera_topic": "",
    "bag_steering_topic": "",
    "mode": "lockstep",
    "rate": 1.0,
    "start": 0.0,
    "duration": 0.0,
    "frame_id": "camera",
    "subscribers": 2,
    "answer_timeout": 20.0,
    "startup_timeout": 60.0,
    "steering_ratio": DEFAULT_VEHICLE.steering_ratio,
    "wheelbase": DEFAULT_VEHICLE.wheelbase,
    "progress": True,
}
MODES = ("lockstep", "realtime")
# every sample delivered, in order, none replaced by a newer one: lockstep needs no re-sending
IN_ORDER = QoSProfile(depth=1, history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
HELD = "held"  # frame_id of a `replay/ack` that says: the frame is in, its answer waits for room in the queue
READY = "ready"  # frame_id of the evaluator's `replay/ack` that says: every input is heard, start playing
GONE_AFTER_S = 2.0  # a node absent from the graph this long is gone


def frame_index(msg: Header) -> int | None:
    """The source index a `replay/frame` message carries; None if it carries none."""
    return int(msg.frame_id) if msg.frame_id.isdigit() else None


class PlayerError(RuntimeError):
    """The replay cannot go on; the message says why."""


def source_spec(source: str, camera_topic: str = "", steering_topic: str = "") -> dict:
    """A `source` parameter (path or YAML mapping) -> reader spec, with topic overrides for ROS 2 bags."""
    if not source:
        raise ConfigError("parameter 'source' is empty: pass source:=<bag, bag folder or dataset folder>")
    spec = spec_from_text(source)
    if spec.get("kind") == "ros2_bag":
        spec["camera_topic"] = camera_topic or spec.get("camera_topic")
        spec["steering_topic"] = steering_topic or spec.get("steering_topic")
    return spec


class BagPlayer(Node):
    def __init__(self) -> None:
        super().__init__("qattn_bag_player")
        self.p = {name: self.declare_parameter(name, value).value for name, value in DEFAULTS.items()}
        p = self.p
        if p["mode"] not in MODES:
            raise ConfigError(f"parameter mode={p['mode']!r}: expected one of {', '.join(MODES)}")
        if min(p["rate"], p["answer_timeout"], p["startup_timeout"]) <= 0 or min(p["start"], p["duration"]) < 0:
            raise ConfigError("parameters rate, answer_timeout, startup_timeout must be > 0; start, duration >= 0")
        self.vehicle = VehicleGeometry(p["steering_ratio"], p["wheelbase"])
        self.source = open_source(source_spec(p["source"], p["bag_camera_topic"], p["bag_steering_topic"]))
        self.pub_image = self.create_publisher(Image, "image", IN_ORDER)
        self.pub_truth = self.create_publisher(type(steering_message(Header(), 0.0)), "ground_truth/steering_angle",
                                               IN_ORDER)  # fmt: skip
        self.pub_index = self.create_publisher(Header, "replay/frame", IN_ORDER)
        self.pub_clock = self.create_publisher(Clock, "/clock", IN_ORDER)
        self.pub_status = self.create_publisher(String, "replay/status", LATCHED)
        self.ready = False  # the evaluator hears every input
        self.seen: dict[str, float] = {}  # topic -> when it last had a publisher
        self.answered: set[tuple[int, int]] = set()
        self.held: set[tuple[int, int]] = set()  # in at the evaluator, answer held back for room in its queue
        self.create_subscription(Header, "replay/ack", self._on_ack, IN_ORDER)
        self.status = {"state": "starting", "source": p["source"], "fingerprint": self.source.fingerprint(),
                       "mode": p["mode"], "frames": 0, "played": 0,
                       "held": 0, "reason": "", "indexes": True, "vehicle": self.vehicle.to_dict(),
                       "steering_unit": self.source.steering_unit,
                       "positive_is_left": self.source.positive_is_left}  # fmt: skip

    def _on_ack(self, msg: Header) -> None:
        if msg.frame_id == READY:
            self.ready = True
        elif msg.frame_id == HELD:
            self.held.add((msg.stamp.sec, msg.stamp.nanosec))
            self.status["held"] += 1
        else:
            self.answered.add((msg.stamp.sec, msg.stamp.nanosec))

    def publish_status(self, **changes) -> None:
        self.status.update(changes)
        self.pub_status.publish(String(data=json.dumps(self.status)))

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            rclpy.spin_once(self, timeout_sec=max(0.0, min(0.01, end - time.monotonic())))
            if time.monotonic() >= end:
                return

    def wait_for_consumers(self) -> None:
        """Playing starts when the evaluator says it hears every input (an answer with stamp 0) and the
        camera topic has its subscribers: a frame sent before would be lost to whoever was not there yet."""
        want = self.p["subscribers"]
        end = time.monotonic() + self.p["startup_timeout"]
        while time.monotonic() < end:
            have = self.count_subscribers(self.pub_image.topic_name)
            if have >= want and self.ready:
                self.spin_for(0.3)  # both ends of every connection matched
                return
            self.spin_for(0.05)
        problems = [f"{self.pub_image.topic_name} has {have} of {want} subscribers (steering node, evaluator)"]
        if not self.count_publishers("steering_angle"):
            problems.append("no publisher on steering_angle: is qattn_steering running and active?")
        if not self.count_publishers("replay/ack"):
            problems.append("nothing publishes replay/ack: is the replay evaluator running?")
        elif not self.ready:
            problems.append("the evaluator does not hear all of its inputs yet")
        raise PlayerError(f"the graph is not up after {self.p['startup_timeout']} s: {'; '.join(problems)}")

    def selected(self) -> Iterator[tuple[int, Record]]:
        """(index in the source, record) of the frames between start and start + duration."""
        first_stamp = None
        for index, record in enumerate(self.source):
            first_stamp = record.stamp_ns if first_stamp is None else first_stamp
            offset = (record.stamp_ns - first_stamp) / 1e9
            if offset < self.p["start"]:
                continue
            if self.p["duration"] and offset > self.p["start"] + self.p["duration"]:
                return
            yield index, record

    def play(self) -> int:
        """Play the selection; the number of frames played. A read error ends the replay, saying where."""
        p = self.p
        frames = self.selected()
        self.publish_status(state="waiting", frames=len(self.source))
        bar = tqdm(total=len(self.source), desc="replay", unit="frame", disable=not p["progress"])
        played, first_stamp, started = 0, None, time.monotonic()
        try:
            self.wait_for_consumers()
            started = time.monotonic()
            while True:
                try:
                    item = next(frames, None)
                except DataError as error:
                    raise PlayerError(f"{p['source']}: {error}") from None
                except Exception as error:  # rosbags raises several types for a cut-off or damaged file
                    raise PlayerError(f"{p['source']}: reading stopped at frame {played} "
                                      f"({type(error).__name__}: {error})") from None  # fmt: skip
                if item is None:
                    break
                index, record = item
                if played == 0:
                    first_stamp = record.stamp_ns
                    bar.total = len(self.source) - index  # the camera messages left: an upper bound
                    self.publish_status(state="playing", first_index=index, frames=bar.total)
                if p["mode"] == "realtime":
                    due = started + (record.stamp_ns - first_stamp) / 1e9 / p["rate"]
                    self.spin_for(max(0.0, due - time.monotonic()))
                self.publish_frame(record, index)
                if p["mode"] == "lockstep":
                    self.wait_for_answer(record, played)
                played += 1
                bar.update()
                self.status["played"] = played
        except PlayerError as error:
            self.publish_status(state="failed", played=played, reason=str(error))
            raise
        finally:
            bar.close()
        self.publish_status(state="done", played=played, frames=played)
        return played

    def publish_frame(self, record: Record, index: int) -> None:
        stamp = stamp_from_ns(record.stamp_ns)
        header = Header(stamp=stamp, frame_id=self.p["frame_id"])
        source = self.source
        truth = to_wheel_angle(record.steering, source.steering_unit, source.positive_is_left, self.vehicle)
        self.pub_clock.publish(Clock(clock=stamp))
        self.pub_truth.publish(steering_message(header, truth))
        self.pub_index.publish(Header(stamp=stamp, frame_id=str(index)))
        self.pub_image.publish(fill_image(Image(), header, record.image, "rgb8"))

    def wait_for_answer(self, record: Record, played: int) -> None:
        """Until the evaluator answers. Nothing is sent again: delivery is reliable and keeps all. Held, the frame
        waits as long as the evaluator is in the graph; not held after answer_timeout s, the graph is dead."""
        key = divmod(int(record.stamp_ns), 1_000_000_000)
        end = time.monotonic() + self.p["answer_timeout"]
        while key not in self.answered:
            gone = self.gone()
            if gone or (time.monotonic() > end and key not in self.held):
                raise PlayerError(
                    f"frame {played} (stamp {key[0]}.{key[1]:09d}) was not answered"
                    + (f": {gone}" if gone else f" within {self.p['answer_timeout']} s: the evaluator got no "
                       "steering_angle / attention/map for it; is qattn_steering running and active?")
                )  # fmt: skip
            rclpy.spin_once(self, timeout_sec=0.005)
        self.answered.discard(key)
        self.held.discard(key)

    def gone(self) -> str:
        """Which consumer has left the graph (none on the topic it serves for GONE_AFTER_S), or ''."""
        now = time.monotonic()
        if now - self.seen.get("", 0.0) < 0.25:  # a graph query four times a second is enough
            return ""
        self.seen[""] = now
        for topic, who in (("replay/ack", "the replay evaluator"), ("steering_angle", "qattn_steering")):
            if self.count_publishers(topic):
                self.seen[topic] = now
            elif now - self.seen.setdefault(topic, now) > GONE_AFTER_S:
                return f"{who} has left the graph (nothing publishes {topic})"
        return ""


def main(args: list[str] | None = None) -> int:
    init_keeping_signals(args)
    node = None
    try:
        node = BagPlayer()
        played = node.play()
        node.get_logger().info(f"replay done: {played} frames")
        node.spin_for(0.5)  # let the last messages and the status leave
        return 0
    except (ConfigError, DataError, PlayerError) as error:
        if node is not None:
            node.spin_for(0.5)
        print(f"qattn_bag_player: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        signals.stopping()
        if node is None:
            return signals.INTERRUPTED_BEFORE_START
        node.get_logger().info(f"replay stopped on {', '.join(signals.received()) or 'shutdown'}")
        return 0  # stopped on purpose: not a failure
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
