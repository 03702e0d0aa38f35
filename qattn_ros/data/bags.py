"""Camera + steering from ROS 1 and ROS 2 bags, read with rosbags' AnyReader.

Steering (and speed) are interpolated linearly in time to each camera stamp; camera
frames outside the span of the steering samples are dropped, never extrapolated or
zero-filled. Stamps are the header stamps where a message has a header, else the bag's
receive time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from ..core.errors import DataError
from .images import message_to_rgb
from .record import Record

UDACITY_CAMERA_TOPICS = ("/center_camera/image_color/compressed", "/center_camera/image_color")
UDACITY_STEERING_TOPIC = "/vehicle/steering_report"
STEERING_REPORT_MSG = """Header header
float32 steering_wheel_angle
float32 steering_wheel_angle_cmd
float32 steering_wheel_torque
float32 speed
bool enabled
bool override
bool driver
bool fault_wdc
bool fault_bus1
bool fault_bus2
bool fault_calibration
bool fault_connector
"""  # dbw_mkz_msgs/SteeringReport as recorded in the Udacity Challenge 2 bags


def interpolate(sample_t: np.ndarray, sample_v: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of samples (sorted by time) at `at`; (values, inside-the-span mask)."""
    inside = (at >= sample_t[0]) & (at <= sample_t[-1]) if len(sample_t) else np.zeros(len(at), bool)
    values = np.interp(at.astype(np.float64), sample_t.astype(np.float64), sample_v) if len(sample_t) else at * 0.0
    return values, inside


def _field(message: object, path: str) -> float:
    for part in path.split("."):
        message = getattr(message, part)
    return float(message)


def _stamp(message: object, bag_time: int) -> int:
    header = getattr(message, "header", None)
    if header is None:
        return bag_time
    stamp = header.stamp
    ns = stamp.sec * 1_000_000_000 + (stamp.nanosec if hasattr(stamp, "nanosec") else stamp.nsec)
    return ns if ns > 0 else bag_time


class BagSource:
    """Records from bags: `camera_topics` (first one present is used) + a steering topic.

    `steering_field` and `speed_field` are dotted attribute paths in the steering
    message (e.g. 'data', 'twist.angular.z', 'steering_wheel_angle'). `custom_types`
    maps message type names to .msg definitions for bags that carry none (ROS 2).
    """

    def __init__(
        self,
        paths: str | Sequence[str],
        camera_topics: Sequence[str] = UDACITY_CAMERA_TOPICS,
        steering_topic: str = UDACITY_STEERING_TOPIC,
        steering_field: str = "steering_wheel_angle",
        speed_field: str | None = "speed",
        steering_unit: str = "steering_wheel_rad",
        positive_is_left: bool = True,
        min_speed: float | None = None,
        custom_types: dict[str, str] | None = None,
    ) -> None:
        self.paths = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
        missing = [str(p) for p in self.paths if not p.exists()]
        if missing:
            raise DataError(f"bag not found: {', '.join(missing)}")
        self.camera_topics = [camera_topics] if isinstance(camera_topics, str) else list(camera_topics)
        self.steering_topic, self.steering_field, self.speed_field = steering_topic, steering_field, speed_field
        self.steering_unit, self.positive_is_left, self.min_speed = steering_unit, positive_is_left, min_speed
        self.custom_types = custom_types or {}
        self._skipped = {"corrupt_image": 0, "outside_steering_span": 0, "below_min_speed": 0}
        with self._open() as reader:
            topics = sorted({c.topic for c in reader.connections})
            self.camera_topic = next((t for t in self.camera_topics if t in topics), None)
            if self.camera_topic is None or steering_topic not in topics:
                wanted = [t for t in [*self.camera_topics, steering_topic] if t not in topics]
                raise DataError(f"{self._name()}: no topic {', '.join(wanted)}; the bag has: {', '.join(topics)}")
            self._count = sum(c.msgcount for c in reader.connections if c.topic == self.camera_topic)
            self._steering = self._read_steering(reader)

    def _name(self) -> str:
        return ", ".join(str(p) for p in self.paths)

    @contextlib.contextmanager
    def _open(self) -> Iterator[AnyReader]:
        store = get_typestore(Stores.ROS2_HUMBLE)
        for name, definition in self.custom_types.items():
            store.register(get_types_from_msg(definition, name))
        reader = AnyReader(self.paths, default_typestore=store)
        try:
            reader.open()
        except Exception as error:  # rosbags raises several reader errors for damaged files
            raise DataError(
                f"{self._name()}: cannot read bag ({error}); a recording cut off needs `rosbag reindex` (ROS 1) "
                "or `ros2 bag reindex` (ROS 2)"
            ) from None
        try:
            yield reader
        finally:
            reader.close()

    def _read_steering(self, reader: AnyReader) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(stamps, steering, speed) of the steering topic, sorted by stamp."""
        stamps, steering, speed = [], [], []
        connections = [c for c in reader.connections if c.topic == self.steering_topic]
        try:
            for connection, bag_time, raw in reader.messages(connections=connections):
                message = reader.deserialize(raw, connection.msgtype)
                stamps.append(_stamp(message, bag_time))
                steering.append(_field(message, self.steering_field))
                speed.append(_field(message, self.speed_field) if self.speed_field else np.nan)
        except AttributeError as error:
            raise DataError(f"{self._name()}: {self.steering_topic}: field not found ({error})") from None
        except Exception as error:
            raise DataError(f"{self._name()}: cannot read {self.steering_topic} ({error})") from None
        if not stamps:
            raise DataError(f"{self._name()}: topic {self.steering_topic} has no messages")
        order = np.argsort(stamps, kind="stable")
        return np.asarray(stamps)[order], np.asarray(steering)[order], np.asarray(speed)[order]

    def __len__(self) -> int:
        """Camera messages in the bag: an upper bound on the records (some may be dropped)."""
        return self._count

    def __iter__(self) -> Iterator[Record]:
        stamps, steering, speed = self._steering
        with self._open() as reader:
            connections = [c for c in reader.connections if c.topic == self.camera_topic]
            for connection, bag_time, raw in reader.messages(connections=connections):
                try:
                    message = reader.deserialize(raw, connection.msgtype)
                    image = message_to_rgb(message)
                except (DataError, ValueError, AssertionError, IndexError):
                    self._skipped["corrupt_image"] += 1
                    continue
                stamp = _stamp(message, bag_time)
                at = np.array([stamp])
                value, inside = interpolate(stamps, steering, at)
                if not inside[0]:
                    self._skipped["outside_steering_span"] += 1
                    continue
                velocity = float(interpolate(stamps, speed, at)[0][0]) if self.speed_field else None
                if self.min_speed is not None and velocity is not None and velocity < self.min_speed:
                    self._skipped["below_min_speed"] += 1
                    continue
                yield Record(image=image, steering=float(value[0]), stamp_ns=stamp, speed=velocity)

    def fingerprint(self) -> dict:
        stats = [p.stat() for p in self.paths]
        return {
            "kind": "bag",
            "paths": [str(p.resolve()) for p in self.paths],
            "sizes": [s.st_size for s in stats],
            "mtimes_ns": [s.st_mtime_ns for s in stats],
            "camera_topic": self.camera_topic,
            "steering": [self.steering_topic, self.steering_field, self.speed_field, self.min_speed],
        }

    def skipped(self) -> dict[str, int]:
        return dict(self._skipped)


def udacity_bag(
    paths: str | Sequence[str], min_speed: float | None = None, compressed: bool | None = None
) -> BagSource:
    """Udacity Challenge 2 bags (HMB_1..6): steering-wheel angle in rad, positive left.

    The bags carry dbw_mkz_msgs definitions, so nothing needs registering.
    """
    topics = UDACITY_CAMERA_TOPICS if compressed is None else (UDACITY_CAMERA_TOPICS[0 if compressed else 1],)
    return BagSource(paths, camera_topics=topics, min_speed=min_speed)


def ros2_bag(
    path: str,
    camera_topic: str,
    steering_topic: str,
    steering_field: str = "data",
    steering_unit: str = "wheel_rad",
    positive_is_left: bool = True,
    speed_field: str | None = None,
    custom_types: dict[str, str] | None = None,
    min_speed: float | None = None,
) -> BagSource:
    """A ROS 2 bag (sqlite3 or mcap) with the topics and fields named in config."""
    return BagSource(
        path, camera_topics=(camera_topic,), steering_topic=steering_topic, steering_field=steering_field,
        speed_field=speed_field, steering_unit=steering_unit, positive_is_left=positive_is_left,
        min_speed=min_speed, custom_types=custom_types,
    )  # fmt: skip
