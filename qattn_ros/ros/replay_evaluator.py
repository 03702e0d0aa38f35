"""qattn_replay_evaluator: measure, online, how faithful the attention the steering node published is.

Pairs each camera frame with what qattn_steering published for it, by header stamp: the
stamped `steering_angle` and `attention/map` (and the player's `ground_truth/steering_angle`).
A worker thread, never the subscriptions, evaluates the pairs in groups through the same engine
as `training/evaluate.py`, with its own copy of the checkpoint and the *published* map as the
saliency: deletion, insertion, and the random-order floor. It also checks that the published
steering is its own model's prediction for that frame and measures the error against the
ground truth.

Results go to `<out>/<name>/{attention,random}.jsonl` as each group finishes (an interrupted
replay keeps its work; a rerun skips what is there), and at the end (or on Ctrl-C) the report
of `training/evaluate.py` — table.md, results.json, curves.png, overlays.png — plus replay.json
(counts, where it stopped). Camera and node outputs are recorded to `<out>/recording/run_N`
(mcap; RViz and Foxglove open it).

In lockstep `replay/ack` answers each frame once its outputs are in and there is room in the
evaluation queue, so the player never outruns the evaluation; while there is no room, an ack with
frame_id `held` says the frame is in (the player does not send it again). Frames whose outputs do not come
within `match_timeout` s are counted as unmatched, by what was missing.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
import torch
from geometry_msgs.msg import TwistStamped
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header, String

from ..errors import CheckpointError, ConfigError
from ..explain.engine import EvalSettings, append_rows, done_frames, drop_torn_tail, evaluate_group
from ..explain.report import plot_overlays, write_report
from ..explain.saliency import saliency, upsample_attention
from ..predictor import SteeringPredictor, exact_float32
from ..units import from_wheel_angle
from .bag_player import HELD, RELIABLE
from .conventions import LATCHED, init_keeping_signals
from .messages import BadFrame, image_to_rgb, steering_value

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
}
RECORDED = {  # topic (relative, remappable) -> message type, as the recording names it
    "image": "sensor_msgs/msg/Image",
    "steering_angle": "sensor_msgs/msg/JointState",
    "ground_truth/steering_angle": "sensor_msgs/msg/JointState",
    "attention/map": "sensor_msgs/msg/Image",
    "attention/overlay": "sensor_msgs/msg/Image",
    "cmd_vel": "geometry_msgs/msg/TwistStamped",
}
INTERRUPTED = "interrupted"
BEST_EFFORT = QoSProfile(depth=200, reliability=ReliabilityPolicy.BEST_EFFORT)
INPUTS = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)  # a burst must not overflow the queues


@dataclass
class Pending:
    """What has arrived for one camera stamp."""

    wall: float
    arrival: int | None = None  # order of the camera frame among those received
    image: Image | None = None
    map: np.ndarray | None = None
    steering: float | None = None
    truth: float | None = None

    def missing(self, needs_map: bool) -> list[str]:
        parts = {"image": self.image, "steering_angle": self.steering, "ground_truth": self.truth}
        if needs_map:
            parts["attention/map"] = self.map
        return [name for name, value in parts.items() if value is None]


@dataclass
class Counts:
    received: int = 0
    matched: int = 0
    evaluated: int = 0
    resumed: int = 0  # already in the results from an earlier run
    not_selected: int = 0  # `every`
    unmatched: int = 0
    missing: dict = field(default_factory=dict)  # part -> frames that lacked it
    bad: int = 0
    steering_mismatch: int = 0
    max_steering_diff: float = 0.0
    skipped_busy: int = 0  # real time: the evaluation queue was full


def stamp_key(stamp) -> tuple[int, int]:
    return stamp.sec, stamp.nanosec


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
        self.folder = Path(p["out"]) / p["name"]
        self.folder.mkdir(parents=True, exist_ok=True)
        self.methods = (["attention"] if self.needs_map else []) + (["random"] if p["floor"] else [])
        if not self.methods:
            raise ConfigError(f"{p['checkpoint']}: the model publishes no attention and floor is false: nothing to "
                              "evaluate")  # fmt: skip
        self.files = {m: self.folder / f"{m}.jsonl" for m in self.methods}
        for path in self.files.values():
            drop_torn_tail(path)
        self.done = {m: done_frames(path) for m, path in self.files.items()}
        self.counts = Counts()
        self.pending: dict[tuple[int, int], Pending] = {}
        self.closed: OrderedDict[tuple[int, int], None] = OrderedDict()  # recent stamps, to ignore repeats
        self.backlog: deque[Pending] = deque()  # matched, waiting for the worker
        self.unacked: deque[Header] = deque()  # answers held back while the backlog is full
        self.lock = threading.Condition()
        self.player: dict = {}
        self.stopping = ""  # why the evaluation ends ("" while running)
        self.last_evaluated: dict = {}
        self.showcase: list[tuple[float, int, np.ndarray, np.ndarray, float, float]] = []
        self.started = time.monotonic()
        self.heard_all_since: float | None = None
        self.player_seen = time.monotonic()
        self.first_frame_at: float | None = None
        self.recording: Path | None = None  # this run's bag folder
        self.writer, self.connections = self._open_recording() if p["record"] else (None, {})
        self.pub_ack = self.create_publisher(Header, "replay/ack", RELIABLE)
        self.create_subscription(Image, "image", self._on_image, INPUTS, raw=True)
        outputs = (  # topic, type, part of the pair, how it is read, QoS
            ("attention/map", Image, "map", self._read_map, BEST_EFFORT),
            ("steering_angle", JointState, "steering", steering_value, INPUTS),
            ("ground_truth/steering_angle", JointState, "truth", steering_value, INPUTS),
        )
        for topic, kind, part, read, qos in outputs:
            self.create_subscription(kind, topic, lambda raw, k=kind, t=topic, p=part, r=read:
                                     self._on_output(raw, k, t, p, r), qos, raw=True)  # fmt: skip
        self.create_subscription(Image, "attention/overlay", self._on_overlay, BEST_EFFORT, raw=True)
        self.create_subscription(TwistStamped, "cmd_vel", self._on_command, INPUTS, raw=True)
        self.create_subscription(String, "replay/status", self._on_status, LATCHED)
        self.create_timer(0.25, self._sweep, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.create_timer(0.1, self._announce, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.worker = threading.Thread(target=self._work, name="replay_evaluation", daemon=True)
        self.worker.start()
        self.get_logger().info(f"evaluating {p['checkpoint']} ({', '.join(self.methods)}) into {self.folder}")

    # -- recording --------------------------------------------------------------------------
    def _open_recording(self):
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        store = get_typestore(Stores.ROS2_HUMBLE)
        runs = Path(self.p["out"]) / "recording"
        runs.mkdir(parents=True, exist_ok=True)
        number = 1 + max((int(d.name.split("_")[-1]) for d in runs.glob("run_*") if d.name[4:].isdigit()), default=0)
        self.recording = runs / f"run_{number}"
        writer = Writer(self.recording, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        connections = {
            topic: writer.add_connection(self.resolve_topic_name(topic), kind, typestore=store)
            for topic, kind in RECORDED.items()
        }
        return writer, connections

    def _record(self, topic: str, raw: bytes, stamp) -> None:
        if self.writer is not None:
            self.writer.write(self.connections[topic], stamp.sec * 1_000_000_000 + stamp.nanosec, raw)

    # -- subscriptions: pair by stamp, never block ------------------------------------------
    def _entry(self, stamp) -> Pending | None:
        """The pending pair of a stamp; None once that stamp is matched (a re-sent frame, its outputs again)."""
        key = stamp_key(stamp)
        if key in self.closed:
            return None
        if key not in self.pending:
            self.pending[key] = Pending(wall=time.monotonic())
        return self.pending[key]

    def _on_image(self, raw: bytes) -> None:
        msg = deserialize_message(raw, Image)
        entry = self._entry(msg.header.stamp)
        if entry is None:  # the player sent it again: it missed the answer (or that it is held)
            with self.lock:
                held = any(stamp_key(h.stamp) == stamp_key(msg.header.stamp) for h in self.unacked)
            self.pub_ack.publish(Header(stamp=msg.header.stamp, frame_id=HELD if held else ""))
            return
        if entry.image is not None:
            return
        self._record("image", raw, msg.header.stamp)
        entry.image, entry.arrival = msg, self.counts.received
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
        self.counts.received += 1
        self._check(msg.header)

    def _on_output(self, raw: bytes, kind: type, topic: str, part: str, read) -> None:
        """Record a message; the first one for a pending stamp fills `part` with read(msg) (None: a bad one)."""
        msg = deserialize_message(raw, kind)
        self._record(topic, raw, msg.header.stamp)
        entry = self._entry(msg.header.stamp)
        if entry is None or getattr(entry, part) is not None:
            return
        value = read(msg)
        if value is None:
            self.counts.bad += 1
            return
        setattr(entry, part, value)
        self._check(msg.header)

    @staticmethod
    def _read_map(msg: Image) -> np.ndarray | None:
        if msg.encoding != "32FC1" or len(msg.data) != 4 * msg.height * msg.width:
            return None
        return np.frombuffer(bytes(msg.data), np.float32).reshape(msg.height, msg.width)

    def _on_overlay(self, raw: bytes) -> None:
        self._record("attention/overlay", raw, deserialize_message(raw, Image).header.stamp)

    def _on_command(self, raw: bytes) -> None:
        self._record("cmd_vel", raw, deserialize_message(raw, TwistStamped).header.stamp)

    def _on_status(self, msg: String) -> None:
        with self.lock:
            self.player = json.loads(msg.data)
            self.lock.notify_all()

    def _check(self, header) -> None:
        """A complete pair goes to the backlog; answered at once if there is room, else when there is."""
        key = stamp_key(header.stamp)
        entry = self.pending[key]
        if entry.missing(self.needs_map):
            return
        del self.pending[key]
        self._close(key)
        self.counts.matched += 1
        with self.lock:
            if len(self.backlog) >= self.p["queue"] and self.player.get("mode") == "realtime":
                self.counts.skipped_busy += 1
                return
            self.backlog.append(entry)
            answer_now = len(self.backlog) <= self.p["queue"]
            if not answer_now:
                self.unacked.append(Header(stamp=header.stamp))
            self.lock.notify_all()
        self.pub_ack.publish(Header(stamp=header.stamp, frame_id="" if answer_now else HELD))

    def _announce(self) -> None:
        """Until the first frame: an answer with stamp 0 once every input has had a publisher for 0.5 s (the
        publishers' side of each connection matches a moment after this side), meaning ready."""
        if self.counts.received:
            return
        inputs = ["image", "ground_truth/steering_angle", "steering_angle"] + ["attention/map"] * self.needs_map
        if not all(self.count_publishers(topic) for topic in inputs):
            self.heard_all_since = None
        elif self.heard_all_since is None:
            self.heard_all_since = time.monotonic()
        elif time.monotonic() - self.heard_all_since > 0.5:
            self.pub_ack.publish(Header())

    def _close(self, key) -> None:
        """A stamp matched or given up: what still comes for it is ignored (counted once)."""
        self.closed[key] = None
        if len(self.closed) > 10_000:
            self.closed.popitem(last=False)

    def _sweep(self) -> None:
        """Frames whose outputs did not come in time are unmatched (counted by what was missing)."""
        now = time.monotonic()
        for key, entry in list(self.pending.items()):
            if now - entry.wall > self.p["match_timeout"] or len(self.pending) > 10 * self.p["queue"]:
                self._unmatched(key)

    def _unmatched(self, key) -> None:
        entry = self.pending.pop(key)
        self._close(key)
        self.counts.unmatched += 1
        for part in entry.missing(self.needs_map):
            self.counts.missing[part] = self.counts.missing.get(part, 0) + 1

    # -- the worker -------------------------------------------------------------------------
    def _take(self) -> list[Pending]:
        """The next group from the backlog, and the answers it frees. No ROS call is made holding the lock:
        the executor's callbacks need it."""
        with self.lock:
            while not self.backlog and not self.stopping:
                self.lock.wait(timeout=0.1)
            if self.stopping == INTERRUPTED:
                return []  # Ctrl-C: the group under way finishes, the backlog waits for a rerun
            group = [self.backlog.popleft() for _ in range(min(self.p["group"], len(self.backlog)))]
            freed = []
            while self.unacked and len(self.backlog) + len(freed) < self.p["queue"]:
                freed.append(self.unacked.popleft())
        for header in freed:
            self.pub_ack.publish(header)
        return group

    def _first_index(self) -> int:
        """The source index of the first frame played: the player says it once it plays (without our player,
        e.g. under `ros2 bag play`, frames count from 0)."""
        while "first_index" not in self.player and not self.stopping and self.has_player():
            time.sleep(0.05)
        return int(self.player.get("first_index", 0))

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
                self.counts.bad += len(group)
                self.get_logger().error(f"evaluation failed: {type(error).__name__}: {error}")

    def _evaluate(self, entries: list[Pending]) -> None:
        first = self._first_index()
        chosen = []
        for entry in entries:
            index = first + entry.arrival
            if index % self.p["every"]:
                self.counts.not_selected += 1
            elif all(index in done for done in self.done.values()):
                self.counts.resumed += 1
            else:
                chosen.append((index, entry))
        if not chosen:
            return
        predictor, info = self.predictor, self.predictor.info
        images, ids, truth, published, maps = [], [], [], [], []
        for index, entry in chosen:
            try:
                rgb = image_to_rgb(entry.image, self.p["max_pixels"])
            except BadFrame as error:
                self.counts.bad += 1
                self.get_logger().warning(f"frame {index}: {error}")
                continue
            images.append(predictor.preprocessing.to_model_uint8(rgb))
            ids.append(index)
            truth.append(from_wheel_angle(entry.truth, info.steering_unit, info.positive_is_left, info.vehicle))
            published.append(entry.steering)
            maps.append(entry.map)
        if not ids:
            return
        ids_array = np.asarray(ids, np.int64)
        with exact_float32():
            x = predictor.normalize(np.stack(images))
            results = {}
            if self.needs_map:
                alpha = torch.from_numpy(np.stack(maps)).to(x.device)
                results["attention"] = upsample_attention(alpha, tuple(x.shape[-2:]))
            if "random" in self.methods:
                results["random"] = saliency("random", predictor.model, x, ids_array, self.settings.seed)
            rows = {m: evaluate_group(predictor, x, heat, ids_array, np.asarray(truth), None, self.settings)
                    for m, heat in results.items()}  # fmt: skip
        for row, value in zip(rows[self.methods[0]], published, strict=True):
            difference = abs(predictor.to_wheel_angle(row["prediction"]) - value)
            self.counts.max_steering_diff = max(self.counts.max_steering_diff, difference)
            self.counts.steering_mismatch += int(difference > self.p["steering_tolerance"])
        for method, method_rows in rows.items():
            for row, value in zip(method_rows, published, strict=True):
                row["published_wheel_angle"] = value
            fresh = [r for r in method_rows if r["frame"] not in self.done[method]]
            with self.files[method].open("a") as handle:
                append_rows(handle, fresh)
            self.done[method].update(r["frame"] for r in fresh)
        self.counts.evaluated += len(ids)
        self.last_evaluated = {"frame": ids[-1], "stamp": list(stamp_key(chosen[-1][1].image.header.stamp))}
        self._keep_showcase(rows, images, results)

    def _keep_showcase(self, rows: dict, images: list[np.ndarray], maps: dict) -> None:
        """The 4 frames where the published attention and the random order differ most, for overlays.png."""
        if "attention" not in rows or "random" not in rows:
            return
        for k, (att, rnd) in enumerate(zip(rows["attention"], rows["random"], strict=True)):
            a, r = att["deletion_auc"], rnd["deletion_auc"]
            spread = abs(a - r) / max(a + r, 1e-12)
            self.showcase.append((spread, att["frame"], images[k], maps["attention"][k].cpu().numpy(),
                                  att["deletion_auc"], rnd["deletion_auc"]))  # fmt: skip
        self.showcase = sorted(self.showcase, key=lambda s: -s[0])[:4]

    # -- the end ----------------------------------------------------------------------------
    def finished(self) -> bool:
        """The player is done (or failed) and every frame it played is evaluated or accounted for."""
        state = self.player.get("state")
        if state not in ("done", "failed"):
            return False
        accounted = self.counts.matched + self.counts.unmatched
        if accounted < self.counts.received or self.pending:
            return False
        with self.lock:
            return not self.backlog

    def has_player(self) -> bool:
        """Our bag player is in the graph (without it, e.g. under `ros2 bag play`, frames count from 0)."""
        return self.count_publishers("replay/status") > 0

    def player_gone(self) -> bool:
        """No publisher on replay/status for 2 s after there was one."""
        if self.count_publishers("replay/status"):
            self.player_seen = time.monotonic()
        return time.monotonic() - self.player_seen > 2.0

    def stop(self, why: str) -> None:
        with self.lock:
            self.stopping = why
            self.lock.notify_all()
        self.worker.join()

    def write(self, complete: bool) -> dict:
        """The report of what is evaluated so far, replay.json and the recording, closed."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        out = Path(self.p["out"])
        info = self.predictor.info
        (self.folder / "model.json").write_text(json.dumps(
            {"checkpoint": self.p["checkpoint"], "variant": info.model.variant, "bits": info.model.bits,
             "steering_unit": info.steering_unit, "frames": self.counts.received,
             "saliency": "the attention/map published by qattn_steering"}, indent=2))  # fmt: skip
        results = write_report(out)
        if self.showcase:
            rows = [(f"frame {frame}", self.predictor.preprocessing.to_rgb(image),
                     [(f"published attention\ndel AUC {att:.4f} (random {rnd:.4f})", heat)])
                    for _, frame, image, heat, att, rnd in sorted(self.showcase, key=lambda s: s[1])]  # fmt: skip
            plot_overlays(rows, out / "overlays.png")
        elapsed = time.monotonic() - self.started
        replay_s = time.monotonic() - (self.first_frame_at or self.started)  # the report itself included
        summary = {
            "complete": complete,
            "stopped": self.stopping,
            "last_evaluated": self.last_evaluated,
            "player": self.player,
            "counts": self.counts.__dict__,
            "elapsed_s": round(elapsed, 3),
            "first_frame_to_report_s": round(replay_s, 3),  # the graph's throughput: frames / this
            "evaluated_fps": round(self.counts.evaluated / max(replay_s, 1e-9), 3),
            "recording": str(self.recording) if self.recording else None,
        }
        (out / "replay.json").write_text(json.dumps(summary, indent=2))
        lines = [f"\n## Replay ({'complete' if complete else 'incomplete: ' + self.stopping})\n",
                 f"- frames received {self.counts.received}, matched {self.counts.matched}, evaluated "
                 f"{self.counts.evaluated} (+{self.counts.resumed} from earlier runs), unmatched "
                 f"{self.counts.unmatched} {self.counts.missing or ''}",
                 f"- published steering vs own prediction: max |diff| {self.counts.max_steering_diff:.2e} rad, "
                 f"{self.counts.steering_mismatch} over {self.p['steering_tolerance']:g}"]  # fmt: skip
        if self.last_evaluated:
            sec, nanosec = self.last_evaluated["stamp"]
            lines.append(f"- last evaluated frame {self.last_evaluated['frame']} (stamp {sec}.{nanosec:09d})")
        with (out / "table.md").open("a") as handle:
            handle.write("\n".join(lines) + "\n")
        return results


def main(args: list[str] | None = None) -> int:
    init_keeping_signals(args)
    try:
        node = ReplayEvaluator()
    except (ConfigError, CheckpointError) as error:
        print(f"qattn_replay_evaluator: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    except KeyboardInterrupt:  # Ctrl-C while loading: nothing evaluated yet
        rclpy.try_shutdown()
        return 130
    why, complete = "", False
    try:
        while rclpy.ok() and not node.finished():
            rclpy.spin_once(node, timeout_sec=0.05)
            if node.player and node.player.get("state") not in ("done", "failed") and node.player_gone():
                node.player.update(state="failed", reason="the bag player exited without finishing")
        complete = node.player.get("state") == "done"
        why = "bag done" if complete else f"player failed: {node.player.get('reason', '')}"
    except (KeyboardInterrupt, ExternalShutdownException):
        why = INTERRUPTED
    node.stop(why)
    node.write(complete)
    where = node.last_evaluated.get("frame", "none")
    node.get_logger().info(f"report in {node.p['out']} ({why}; {node.counts.evaluated} frames evaluated, last {where})")
    node.destroy_node()
    rclpy.try_shutdown()
    if not complete:
        print(f"qattn_replay_evaluator: {why}; the report holds what was evaluated (last frame {where}); "
              "rerun to resume", file=sys.stderr)  # fmt: skip
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
