"""qattn_camera: publish camera frames from synthetic roads, an image folder, a video or a bag.

Try the steering node without a robot:
  ros2 run qattn_ros camera_publisher --ros-args -p source:=synthetic -p rate:=20.0
Parameters: source (synthetic | folder of .jpg/.png | video file | Udacity .bag), rate (Hz),
transport (raw | compressed), encoding (rgb8 | bgr8 | mono8 for raw), frame_id, width and
height (synthetic: 320x160 by default, the demo checkpoints' 2:1 frame; 640x480 like a webcam
costs about a core to draw at 20 Hz), loop, frames (stop after this many; 0: never). The first
frame goes out once a subscriber is matched, so that a finite source is seen whole; on exit
the publisher says how many frames it published.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ..data.bags import udacity_bag
from ..data.images import read_rgb
from ..data.synthetic import RoadGenerator
from . import signals
from .conventions import init_keeping_signals
from .messages import fill_image

SYNTHETIC_WIDTH = 320  # px drawn at most; wider frames are scaled up
SYNTHETIC_LOOP = 200  # distinct synthetic frames (10 s at 20 Hz), then the same again
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm"}


def synthetic_frames(width: int, height: int) -> Iterator[np.ndarray]:
    """Synthetic roads, forever: drawn at most SYNTHETIC_WIDTH wide and scaled up (a 640x480 road drawn whole
    costs more than a core at 20 Hz), the first SYNTHETIC_LOOP kept and replayed."""
    scale = min(1.0, SYNTHETIC_WIDTH / width)
    generator = RoadGenerator(max(round(height * scale), 8), max(round(width * scale), 8), seed=99)
    drawn = (generator.frame(i).image for i in range(SYNTHETIC_LOOP))
    for image in itertools.cycle(drawn):  # cycle keeps the drawn frames (small) for the next rounds
        yield image if scale == 1.0 else cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def frames_from(source: str, width: int, height: int) -> Iterator[np.ndarray]:
    """RGB frames of a source, once through."""
    path = Path(source)
    if source == "synthetic":
        yield from synthetic_frames(width, height)
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            raise ValueError(f"no .jpg/.png images in {path}")
        yield from (read_rgb(p) for p in files)
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise ValueError(f"cannot open video {path}")
        while (grabbed := capture.read())[0]:
            yield cv2.cvtColor(grabbed[1], cv2.COLOR_BGR2RGB)
    elif path.suffix == ".bag":
        yield from (record.image for record in udacity_bag(str(path)))
    else:
        raise ValueError(f"source {source!r}: expected synthetic, an image folder, a video file or a .bag")


def to_message(rgb: np.ndarray, header, transport: str, encoding: str):
    if transport == "compressed":
        msg = CompressedImage(header=header, format="jpeg")
        msg.data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
        return msg
    codes = {"bgr8": cv2.COLOR_RGB2BGR, "mono8": cv2.COLOR_RGB2GRAY}
    codes |= {"rgba8": cv2.COLOR_RGB2RGBA, "bgra8": cv2.COLOR_RGB2BGRA}
    converted = rgb if encoding == "rgb8" else cv2.cvtColor(rgb, codes[encoding])
    return fill_image(Image(), header, np.ascontiguousarray(converted), encoding)


class CameraPublisher(Node):
    def __init__(self) -> None:
        super().__init__("qattn_camera")
        defaults = {"source": "synthetic", "rate": 20.0, "transport": "raw", "encoding": "rgb8",
                    "frame_id": "camera", "width": 320, "height": 160, "loop": True, "frames": 0}  # fmt: skip
        p = {k: self.declare_parameter(k, v).value for k, v in defaults.items()}
        self.p = p
        self.frames = self._frames()
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        topic_type = (CompressedImage, "image/compressed") if p["transport"] == "compressed" else (Image, "image")
        self.pub = self.create_publisher(*topic_type, qos)
        self.published = 0
        self.started = 0.0
        self.create_timer(1.0 / p["rate"], self._tick)
        self.get_logger().info(f"publishing {p['source']} on {self.pub.topic_name} at {p['rate']} Hz")

    def _frames(self) -> Iterator[np.ndarray]:
        while True:
            yield from frames_from(self.p["source"], self.p["width"], self.p["height"])
            if not self.p["loop"]:
                return

    def _tick(self) -> None:
        if not self.context.ok():  # shutting down (signal): publishing would fail
            return
        if not self.published and not self.pub.get_subscription_count():
            return  # nobody listens yet
        done = 0 < self.p["frames"] <= self.published
        rgb = None if done else next(self.frames, None)
        if rgb is None:
            raise SystemExit(0)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.p["frame_id"])
        self.pub.publish(to_message(rgb, header, self.p["transport"], self.p["encoding"]))
        self.started = self.started or time.monotonic()
        self.published += 1

    def report(self) -> None:
        seconds = time.monotonic() - self.started if self.published else 0.0
        self.get_logger().info(f"published {self.published} frames in {seconds:.1f} s")


def main(args: list[str] | None = None) -> int:
    init_keeping_signals(args)
    node = None
    try:
        node = CameraPublisher()
        rclpy.spin(node)
    except ValueError as error:
        print(f"qattn_camera: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException, SystemExit):
        pass
    finally:
        signals.stopping()
        if node is not None:
            node.report()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
