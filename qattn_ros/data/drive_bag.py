"""A recorded drive (any source the readers know) as a ROS 2 bag, the way a camera driver would have recorded it.

The camera topic carries sensor_msgs/CompressedImage with each frame's own stamp in the header and as the
record time; a source of JPEG files keeps its bytes as they are (the frames a replay or a training run decodes
from the bag are the frames it decodes from the folder), other frames are JPEG-encoded. The steering topic
carries std_msgs/Float64 in the source's unit at each camera stamp, so interpolating it at a frame gives that
frame's label exactly. `source_spec` is what the `ros2_bag` reader needs to read it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from ..core.atomic import atomic_folder
from .image_list import ImageListSource
from .images import read_rgb
from .record import Source
from .writers import jpeg_bytes

CAMERA_TOPIC = "/camera/image_raw/compressed"
STEERING_TOPIC = "/steering"
IMAGE_TYPE, STEERING_TYPE = "sensor_msgs/msg/CompressedImage", "std_msgs/msg/Float64"


def _frames(source: Source, stamps: set[int]) -> Iterable[tuple[int, float, np.ndarray]]:
    """(stamp, steering, JPEG bytes) of the frames with these stamps, in time order."""
    if isinstance(source, ImageListSource):  # the recorded bytes themselves
        for path, steering, stamp, _ in source.items:
            if stamp in stamps and path.suffix.lower() in (".jpg", ".jpeg"):
                yield stamp, steering, np.frombuffer(path.read_bytes(), np.uint8)
            elif stamp in stamps:
                yield stamp, steering, jpeg_bytes(read_rgb(path))
        return
    for record in source:
        if record.stamp_ns in stamps:
            yield record.stamp_ns, record.steering, jpeg_bytes(record.image)


def write_drive_bag(source: Source, stamps: Iterable[int], path: str | Path, storage: str = "mcap") -> Path:
    """The frames of `source` whose stamps are in `stamps`, and their steering, as a ROS 2 bag at `path`."""
    path, wanted = Path(path), {int(s) for s in stamps}
    store = get_typestore(Stores.ROS2_HUMBLE)
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    with atomic_folder(path) as tmp, Ros2Writer(tmp, version=9, storage_plugin=plugin) as writer:
        camera = writer.add_connection(CAMERA_TOPIC, IMAGE_TYPE, typestore=store)
        steering = writer.add_connection(STEERING_TOPIC, STEERING_TYPE, typestore=store)
        time, header = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]
        for stamp, value, data in tqdm(_frames(source, wanted), total=len(wanted), desc="bag", unit="frame"):
            stamped = header(stamp=time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000),
                             frame_id="center_camera")  # fmt: skip
            image = store.types[IMAGE_TYPE](header=stamped, format="jpeg", data=data)
            writer.write(camera, stamp, store.serialize_cdr(image, IMAGE_TYPE))
            label = store.types[STEERING_TYPE](data=float(value))
            writer.write(steering, stamp, store.serialize_cdr(label, STEERING_TYPE))
    return path


def source_spec(path: str | Path, source: Source) -> dict:
    """The `ros2_bag` source that reads a bag of `write_drive_bag` back, in the unit and sign of `source`."""
    return {"kind": "ros2_bag", "path": str(path), "camera_topic": CAMERA_TOPIC, "steering_topic": STEERING_TOPIC,
            "steering_unit": source.steering_unit, "positive_is_left": source.positive_is_left}  # fmt: skip
