"""qattn_replay_evaluator: measure, online, how faithful the attention the steering node published is.

Pairs each camera frame with what qattn_steering published for it (`qattn_ros.rules.pairing`: by
header stamp, frames sharing a stamp in order): the stamped `steering_angle` and
`attention/map`, the player's `ground_truth/steering_angle` and `replay/frame` (the frame's
index in the source). A worker thread, never the subscriptions, evaluates the pairs through the
same engine as `evaluation/evaluate.py`, with its own copy of the checkpoint and the *published*
map as the saliency: deletion, insertion, and the random-order floor. It also checks that the
published steering is its own model's prediction for that frame and measures the error against
the ground truth (converted back with the geometry the player converted it with).

Results go to `<out>/<name>/{attention,random}.jsonl` a few frames at a time (an interrupted
replay keeps every frame finished; a rerun skips what is there), and at the end (or on Ctrl-C,
within 3 s) the report of `evaluation/evaluate.py` — table.md, results.json, curves.png,
overlays.png — plus replay.json (counts, where it stopped). Camera and node outputs are recorded
to `<out>/recording/run_N` (mcap; RViz and Foxglove open it).

In lockstep `replay/ack` answers each frame once its outputs are in and there is room in the
evaluation queue, so the player never outruns the evaluation; while there is no room, an ack with
frame_id `held` says the frame is in and its answer will come. Frames whose parts do not all come
within `match_timeout` s are counted as unmatched, by what was missing.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import torch
from geometry_msgs.msg import TwistStamped
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header, String

from ..core.errors import CheckpointError, ConfigError
from ..explain.engine import EvalSettings
from ..inference.predictor import SteeringPredictor
from ..rules.pairing import Pairing, Pending
from ..rules.replay_evaluation import OnlineEvaluation, Recorded
from . import signals
from .bag_player import HELD, IN_ORDER, READY, frame_index
from .conventions import LATCHED, create_node, init_keeping_signals, stamp_from_ns
from .messages import image_to_rgb, steering_value
from .recording import RECORDED, Recording

DEFAULTS = {
    "checkpoint": "",
    "out": "",
    "name": "node",
    "device": "auto",
    "every": 1,
    "steps": 50,
    "substrate": "mean",
    "insertion": True,
    "floor": True,
    "seed": 0,
    "group": 32,
    "queue": 96,
    "match_timeout": 5.0,
    "steering_tolerance": 1e-5,
    "record": True,
    "max_pixels": 4096 * 4096,
    "startup_timeout": 120.0,  # s with neither a bag player nor a camera frame: nothing will come
}
INTERRUPTED = "interrupted"
STOP_GRACE_S = 1.0  # on Ctrl-C, how long the worker may take to leave its piece of work (one forward pass)


def stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class ReplayEvaluator(Node):
    def __init__(self) -> None:
        super().__init__("qattn_replay_evaluator")
        p = {name: self.declare_parameter(name, value).value for name, value in DEFAULTS.items()}
        self.p = p
        if not p["checkpoint"] or not p["out"]:
            raise ConfigError("parameters 'checkpoint' and 'out' are required")
        if p["every"] < 1 or p["group"] < 1 or p["queue"] < p["group"] or p["match_timeout"] <= 0:
            raise ConfigError("parameters: every >= 1, group >= 1, queue >= group and match_timeout > 0 required")
        if p["substrate"] not in ("mean", "blur"):
            raise ConfigError(f"parameter substrate={p['substrate']!r}: expected mean or blur")
        self.predictor = SteeringPredictor(p["checkpoint"], p["device"])
        self.predictor.model.eval().to(memory_format=torch.channels_last)
        self.needs_map = self.predictor.has_attention
        self.settings = EvalSettings(steps=p["steps"], substrate=p["substrate"], seed=p["seed"],
                                     insertion=p["insertion"], frames_per_group=p["group"])  # fmt: skip
        methods = (["attention"] if self.needs_map else []) + (["random"] if p["floor"] else [])
        if not methods:
            raise ConfigError(f"{p['checkpoint']}: the model publishes no attention and floor is false: nothing to "
                              "evaluate")  # fmt: skip
        folder = Path(p["out"]) / p["name"]
        folder.mkdir(parents=True, exist_ok=True)
        self.work = OnlineEvaluation(p["checkpoint"], self.predictor, self.settings, folder, methods, p["every"],
                                     p["steering_tolerance"])  # fmt: skip
        self.counts, self.lock = self.work.counts, self.work.lock  # the lock: the backlog and pairing too
        self.pairing = Pairing(("image", "steering", "truth") + ("map",) * self.needs_map, p["match_timeout"])
        self.backlog: list[Pending] = []  # matched, waiting for the worker
        self.unacked: list[int] = []  # stamps whose answers are held back while the backlog is full
        self.player: dict = {}
        self.stopping = ""  # why the evaluation ends ("" while running)
        self.started = time.monotonic()
        self.heard_all_since: float | None = None
        self.player_seen = time.monotonic()
        self.player_was_here = False  # a publisher of replay/status has been in the graph
        self.first_frame_at: float | None = None
        self.recording = Recording(Path(p["out"]) / "recording", self.resolve_topic_name) if p["record"] else None
        for leftover in self.recording.removed if self.recording else []:
            self.get_logger().warning(f"removed {leftover}: the recording of a run killed before it closed its bag "
                                      "(no metadata: unreadable)")  # fmt: skip
        self.pub_ack = self.create_publisher(Header, "replay/ack", IN_ORDER)
        self.create_subscription(Image, "image", self._on_image, IN_ORDER, raw=True)
        outputs = (  # topic, type, part of the pair, how it is read
            ("attention/map", Image, "map", self._read_map),
            ("steering_angle", JointState, "steering", steering_value),
            ("ground_truth/steering_angle", JointState, "truth", steering_value),
            ("replay/frame", Header, "index", frame_index),
        )
        for topic, kind, part, read in outputs:
            self.create_subscription(kind, topic, lambda raw, k=kind, t=topic, p=part, r=read:
                                     self._on_output(raw, k, t, p, r), IN_ORDER, raw=True)  # fmt: skip
        self.create_subscription(Image, "attention/overlay", lambda raw: self._record_only(raw, Image,
                                 "attention/overlay"), IN_ORDER, raw=True)  # fmt: skip
        self.create_subscription(TwistStamped, "cmd_vel", lambda raw: self._record_only(raw, TwistStamped, "cmd_vel"),
                                 IN_ORDER, raw=True)  # fmt: skip
        self.create_subscription(String, "replay/status", self._on_status, LATCHED)
        self.create_timer(0.25, self._sweep, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.create_timer(0.1, self._announce, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.worker = threading.Thread(target=self._work, name="replay_evaluation", daemon=True)
        self.worker.start()
        self.get_logger().info(f"evaluating {p['checkpoint']} ({', '.join(methods)}) into {folder}")

    # -- subscriptions: pair, never block ---------------------------------------------------
    def _record(self, topic: str, raw: bytes, stamp) -> None:
        if self.recording is not None:
            self.recording.write(topic, raw, stamp_ns(stamp))

    def _record_only(self, raw: bytes, kind: type, topic: str) -> None:
        self._record(topic, raw, deserialize_message(raw, kind).header.stamp)

    def _on_image(self, raw: bytes) -> None:
        msg = deserialize_message(raw, Image)
        self._record("image", raw, msg.header.stamp)
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
        with self.lock:
            arrival = self.counts.received  # the frame's index where no player says it (ros2 bag play)
            self.counts.received += 1
        self._add(msg.header.stamp, "image", (msg, arrival))

    def _on_output(self, raw: bytes, kind: type, topic: str, part: str, read) -> None:
        """Record a message (but replay/frame) and pair read(msg) as `part` of its frame (None: a bad one)."""
        msg = deserialize_message(raw, kind)
        stamp = msg.stamp if kind is Header else msg.header.stamp
        if topic in RECORDED:
            self._record(topic, raw, stamp)
        value = read(msg)
        if value is None:
            self.work.count("bad")
            return
        self._add(stamp, part, value)

    @staticmethod
    def _read_map(msg: Image) -> np.ndarray | None:
        if msg.encoding != "32FC1" or len(msg.data) != 4 * msg.height * msg.width:
            return None
        return np.frombuffer(bytes(msg.data), np.float32).reshape(msg.height, msg.width)

    def _on_status(self, msg: String) -> None:
        with self.lock:
            self.player = json.loads(msg.data)
            self.work.start({k: self.player.get(k) for k in ("source", "fingerprint")})
            if self.player.get("indexes"):
                self.pairing.require("index")
            self.lock.notify_all()

    def _add(self, stamp, part: str, value) -> None:
        """A complete pair goes to the backlog; answered at once if there is room, else when there is."""
        with self.lock:
            entry = self.pairing.add(stamp_ns(stamp), part, value, time.monotonic())
            if entry is None:
                return
            self.counts.matched += 1
            answer_now = True
            if entry.ambiguous:  # maybe another frame's output: never evaluated, still answered
                self.counts.ambiguous += 1
            elif len(self.backlog) >= self.p["queue"] and self.player.get("mode") == "realtime":
                self.counts.skipped_busy += 1
                return
            else:
                self.backlog.append(entry)
                answer_now = len(self.backlog) <= self.p["queue"]
                if not answer_now:
                    self.unacked.append(entry.stamp)
            self.lock.notify_all()
        self.pub_ack.publish(Header(stamp=stamp, frame_id="" if answer_now else HELD))

    def _announce(self) -> None:
        """Until the first frame: an answer `ready` once every input has had a publisher for 0.5 s (the
        publishers' side of each connection matches a moment after this side) and the player's status is in."""
        if self.counts.received:
            return
        inputs = ["image", "ground_truth/steering_angle", "steering_angle"] + ["attention/map"] * self.needs_map
        if not all(self.count_publishers(topic) for topic in inputs) or (self.has_player() and not self.player):
            self.heard_all_since = None
        elif self.heard_all_since is None:
            self.heard_all_since = time.monotonic()
        elif time.monotonic() - self.heard_all_since > 0.5:
            self.pub_ack.publish(Header(frame_id=READY))

    def _sweep(self) -> None:
        """Frames whose parts did not all come in time are unmatched (counted by what was missing)."""
        with self.lock:
            for entry in self.pairing.expire(time.monotonic(), keep=10 * self.p["queue"]):
                self.counts.unmatched += 1
                for part in self.pairing.missing(entry):
                    self.counts.missing[part] = self.counts.missing.get(part, 0) + 1

    # -- the worker -------------------------------------------------------------------------
    def _take(self) -> list[Pending]:
        """The next group from the backlog, and the answers it frees. No ROS call is made holding the lock:
        the executor's callbacks need it."""
        with self.lock:
            while not self.backlog and not self.stopping:
                self.lock.wait(timeout=0.1)
            if self.stopping == INTERRUPTED:
                return []  # Ctrl-C: the backlog waits for a rerun
            group, self.backlog = self.backlog[: self.p["group"]], self.backlog[self.p["group"] :]
            room = self.p["queue"] - len(self.backlog)
            freed, self.unacked = self.unacked[:room], self.unacked[room:]
        for stamp in freed:
            self.pub_ack.publish(Header(stamp=stamp_from_ns(stamp)))
        return group

    def _work(self) -> None:
        while True:
            group: list[Pending] = []
            try:
                group = self._take()
                if not group:
                    if self.stopping:
                        return
                    continue
                self._evaluate(group)
            except Exception as error:  # one bad group must not end the evaluation
                self.work.count("bad", len(group))
                self.get_logger().error(f"evaluation failed: {type(error).__name__}: {error}")

    def _evaluate(self, group: list[Pending]) -> None:
        chosen = self.work.chosen(group, lambda msg: image_to_rgb(msg, self.p["max_pixels"]),
                                  self.get_logger().warning)  # fmt: skip
        self.work.evaluate(chosen, Recorded.from_status(self.player), lambda: self.stopping == INTERRUPTED)

    # -- the end ---------------------------------------------------------------------------
    def finished(self) -> bool:
        """The player is done (or failed) and every frame it played is evaluated or accounted for."""
        if self.player.get("state") not in ("done", "failed"):
            return False
        with self.lock:
            return not self.pairing and not self.backlog and self.counts.matched + self.counts.unmatched >= \
                self.counts.received  # fmt: skip

    def has_player(self) -> bool:
        """Our bag player is in the graph (without it, e.g. under `ros2 bag play`, frames count from 0)."""
        return self.count_publishers("replay/status") > 0

    def player_gone(self) -> str:
        """Why no player will send more ('' while one may): its status publisher gone for 2 s after it was there
        (whether or not its status came through), or neither a player nor a frame within `startup_timeout`."""
        now = time.monotonic()
        if self.count_publishers("replay/status"):
            self.player_seen, self.player_was_here = now, True
        if self.player_was_here and now - self.player_seen > 2.0:
            return "the bag player exited without finishing"
        if not self.player_was_here and not self.counts.received and now - self.started > self.p["startup_timeout"]:
            return f"no bag player and no camera frame within startup_timeout={self.p['startup_timeout']} s"
        return ""

    def stop(self, why: str) -> None:
        """End the evaluation: at the end of the bag every frame is evaluated; on Ctrl-C the piece of work under
        way ends at its next forward pass, unsaved (a rerun evaluates it); the report never waits on more than
        STOP_GRACE_S for it."""
        with self.lock:
            self.stopping = why
            self.lock.notify_all()
        self.worker.join(timeout=STOP_GRACE_S if why == INTERRUPTED else None)

    def write(self, complete: bool) -> dict:
        """The report of what is evaluated so far, replay.json, and the recording closed."""
        if self.recording is not None:
            self.recording.close()
        replay_s = time.monotonic() - (self.first_frame_at or self.started)  # the report itself included
        summary = {
            "player": self.player,
            "elapsed_s": round(time.monotonic() - self.started, 3),
            "first_frame_to_report_s": round(replay_s, 3),  # the graph's throughput: frames / this
            "evaluated_fps": round(self.counts.evaluated / max(replay_s, 1e-9), 3),
            "recording": str(self.recording.path) if self.recording else None,
        }
        return self.work.write_report(Path(self.p["out"]), complete, self.stopping, summary)


def main(args: list[str] | None = None) -> int:
    init_keeping_signals(args)
    node = create_node(ReplayEvaluator, (ConfigError, CheckpointError), "qattn_replay_evaluator")
    if isinstance(node, int):
        return node
    why, complete = "", False
    try:
        while rclpy.ok() and not node.finished():
            rclpy.spin_once(node, timeout_sec=0.05)
            if node.player.get("state") not in ("done", "failed") and (gone := node.player_gone()):
                node.player = {**node.player, "state": "failed", "reason": gone}
        complete = node.player.get("state") == "done"
        why = "bag done" if complete else f"player failed: {node.player.get('reason', '')}"
    except (KeyboardInterrupt, ExternalShutdownException):
        why = INTERRUPTED
    signals.stopping()  # a supervisor's second signal (ros2 launch: SIGTERM 5 s after SIGINT) must not cut it short
    node.stop(why)
    node.write(complete)
    where = node.work.last_evaluated.get("frame", "none")
    node.get_logger().info(f"report in {node.p['out']} ({why}; {node.counts.evaluated} frames evaluated, last {where})")
    if not complete:
        print(f"qattn_replay_evaluator: {why}; the report holds what was evaluated (last frame {where}); "
              "rerun to resume", file=sys.stderr)  # fmt: skip
    code = 0 if complete or why == INTERRUPTED else 1  # stopped on purpose: not a failure
    node.destroy_node()  # the graph learns at once that the evaluator is gone
    rclpy.try_shutdown()
    if why == INTERRUPTED:  # everything is saved and a supervisor is counting: skip the interpreter's teardown
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
