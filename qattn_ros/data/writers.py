"""Write synthetic roads in the real Udacity and ROS formats, so each reader is tested on them.

- `write_udacity_bag`: ROS 1 bag like HMB_*.bag: /center_camera/image_color/compressed
  (JPEG, 20 Hz) and /vehicle/steering_report (dbw_mkz_msgs/SteeringReport, 50 Hz, its
  definition embedded), optional bz2/lz4 chunks.
- `write_udacity_folder`: udacity-driving-reader output (interpolated.csv + center/ + left/).
- `write_ch2_test`: Challenge 2 test layout (center/<stamp>.jpg + CH2_final_evaluation.csv).
- `write_ros2_bag`: ROS 2 bag (mcap or sqlite3) with an Image/CompressedImage topic and a
  Float32 or TwistStamped steering topic.

Steering samples carry the label of the nearest camera frame, so interpolating them at a
camera stamp gives that frame's label exactly (each frame's two neighbouring samples are
nearer to it than to any other frame at 50 Hz vs 20 Hz). Bags are written under a temporary name
and renamed when complete; the image folders' index CSV is written last, through a temporary file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from tqdm import tqdm

from ..core.atomic import atomic_folder, atomic_path, write_csv
from ..core.units import from_wheel_angle
from .bags import STEERING_REPORT_MSG, UDACITY_CAMERA_TOPICS, UDACITY_STEERING_TOPIC
from .images import write_rgb
from .synthetic import RoadGenerator, SyntheticFrame

START_NS = 1_479_424_215_880_976_321  # an HMB-era stamp
CAMERA_PERIOD_NS = 50_000_000  # 20 Hz
STEERING_PERIOD_NS = 20_000_000  # 50 Hz
JPEG_QUALITY = 95


def jpeg_bytes(rgb: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.reshape(-1)


def _frames(
    generator: RoadGenerator, count: int, label: str, start_ns: int = START_NS
) -> Iterator[tuple[int, SyntheticFrame]]:
    for index in tqdm(range(count), desc=f"render {label}", unit="frame"):
        yield start_ns + index * CAMERA_PERIOD_NS, generator.frame(index)


def _steering_samples(camera_stamps: np.ndarray, values: np.ndarray, delay_ns: int) -> Iterator[tuple[int, int]]:
    """(stamp, index of the nearest camera frame) at 50 Hz, from the first camera stamp + delay to past the last."""
    for stamp in range(
        int(camera_stamps[0]) + delay_ns, int(camera_stamps[-1]) + STEERING_PERIOD_NS, STEERING_PERIOD_NS
    ):
        yield stamp, int(np.abs(camera_stamps - stamp).argmin())


def _header(store, stamp: int, frame_id: str, ros1: bool):
    time = store.types["builtin_interfaces/msg/Time"](sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000)
    header = store.types["std_msgs/msg/Header"]
    return header(seq=0, stamp=time, frame_id=frame_id) if ros1 else header(stamp=time, frame_id=frame_id)


def _image_message(store, rgb: np.ndarray, stamp: int, compressed: bool, ros1: bool):
    header = _header(store, stamp, "center_camera", ros1)
    if compressed:
        return store.types["sensor_msgs/msg/CompressedImage"](header=header, format="jpeg", data=jpeg_bytes(rgb))
    h, w = rgb.shape[:2]
    return store.types["sensor_msgs/msg/Image"](
        header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w, data=rgb.reshape(-1).copy()
    )


def write_udacity_bag(
    path: str | Path,
    generator: RoadGenerator,
    count: int,
    compression: str | None = "bz2",
    compressed_images: bool = True,
    steering_delay_ns: int = 0,
    start_ns: int = START_NS,
) -> Path:
    """A ROS 1 bag with HMB topics, types and rates; steering-wheel angle in rad, positive left.

    `start_ns`: the first camera stamp (HMB bags of one drive follow each other in time).
    """
    path = Path(path)
    store = get_typestore(Stores.ROS1_NOETIC)
    report_type = "dbw_mkz_msgs/msg/SteeringReport"
    store.register(get_types_from_msg(STEERING_REPORT_MSG, report_type))
    image_type = "sensor_msgs/msg/CompressedImage" if compressed_images else "sensor_msgs/msg/Image"
    camera_topic = UDACITY_CAMERA_TOPICS[0 if compressed_images else 1]
    with atomic_path(path) as tmp:
        tmp.unlink()  # the writer refuses to overwrite a file
        writer = Ros1Writer(tmp)
        if compression:
            writer.set_compression(
                {"bz2": Ros1Writer.CompressionFormat.BZ2, "lz4": Ros1Writer.CompressionFormat.LZ4}[compression]
            )
        stamps, labels, speeds = [], [], []
        with writer:
            camera = writer.add_connection(camera_topic, image_type, typestore=store)
            report = writer.add_connection(UDACITY_STEERING_TOPIC, report_type, typestore=store)
            for stamp, frame in _frames(generator, count, path.name, start_ns):
                message = _image_message(store, frame.image, stamp, compressed_images, ros1=True)
                writer.write(camera, stamp, store.serialize_ros1(message, image_type))
                stamps.append(stamp)
                labels.append(from_wheel_angle(frame.steering, "steering_wheel_rad", positive_is_left=True))
                speeds.append(frame.scene.speed)
            for stamp, nearest in _steering_samples(np.asarray(stamps), np.asarray(labels), steering_delay_ns):
                message = store.types[report_type](
                    header=_header(store, stamp, "", ros1=True), steering_wheel_angle=labels[nearest],
                    steering_wheel_angle_cmd=0.0, steering_wheel_torque=0.0, speed=speeds[nearest], enabled=True,
                    override=False, driver=False, fault_wdc=False, fault_bus1=False, fault_bus2=False,
                    fault_calibration=False, fault_connector=False,
                )  # fmt: skip
                writer.write(report, stamp, store.serialize_ros1(message, report_type))
    return path


def write_udacity_folder(folder: str | Path, generator: RoadGenerator, count: int) -> Path:
    """udacity-driving-reader output: interpolated.csv, center/ and (as distractor rows) left/."""
    folder = Path(folder)
    rows = []
    for index, (stamp, frame) in enumerate(_frames(generator, count, folder.name)):
        angle = from_wheel_angle(frame.steering, "steering_wheel_rad", positive_is_left=True)
        for camera in ("center", "left"):
            name = f"{camera}/{stamp + (0 if camera == 'center' else 1_000_000)}.jpg"
            write_rgb(folder / name, frame.image if camera == "center" else frame.image[:, ::-1], JPEG_QUALITY)
            rows.append([2 * index + (camera == "left"), round(stamp, -6), frame.image.shape[1], frame.image.shape[0],
                         f"{camera}_camera", name, f"{angle:.10f}", "0.0", f"{frame.scene.speed:.6f}",
                         "37.4", "-122.1", "-2.0"])  # fmt: skip
    header = ["index", "timestamp", "width", "height", "frame_id", "filename", "angle", "torque", "speed", "lat",
              "long", "alt"]  # fmt: skip
    return write_csv(folder / "interpolated.csv", header, rows)


def write_ch2_test(folder: str | Path, generator: RoadGenerator, count: int) -> Path:
    """Challenge 2 test layout: center/<frame_id>.jpg and CH2_final_evaluation.csv."""
    folder = Path(folder)
    rows = []
    for stamp, frame in _frames(generator, count, folder.name):
        write_rgb(folder / "center" / f"{stamp}.jpg", frame.image, JPEG_QUALITY)
        rows.append([stamp, f"{from_wheel_angle(frame.steering, 'steering_wheel_rad', True):.10f}", 1])
    return write_csv(folder / "CH2_final_evaluation.csv", ["frame_id", "steering_angle", "public"], rows)


def write_ros2_bag(
    path: str | Path,
    generator: RoadGenerator,
    count: int,
    storage: str = "mcap",
    camera_topic: str = "/camera/image_raw/compressed",
    steering_topic: str = "/steering",
    steering_type: str = "std_msgs/msg/Float32",
    compressed_images: bool = True,
) -> Path:
    """A ROS 2 bag; steering as the front-wheel angle in rad, positive left (Float32.data or twist.angular.z)."""
    path = Path(path)
    store = get_typestore(Stores.ROS2_HUMBLE)
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    image_type = "sensor_msgs/msg/CompressedImage" if compressed_images else "sensor_msgs/msg/Image"
    with atomic_folder(path) as tmp:
        stamps, labels = [], []
        with Ros2Writer(tmp, version=9, storage_plugin=plugin) as writer:
            camera = writer.add_connection(camera_topic, image_type, typestore=store)
            steering = writer.add_connection(steering_topic, steering_type, typestore=store)
            for stamp, frame in _frames(generator, count, path.name):
                message = _image_message(store, frame.image, stamp, compressed_images, ros1=False)
                writer.write(camera, stamp, store.serialize_cdr(message, image_type))
                stamps.append(stamp)
                labels.append(frame.steering)
            for stamp, nearest in _steering_samples(np.asarray(stamps), np.asarray(labels), 0):
                if steering_type == "std_msgs/msg/Float32":
                    message = store.types[steering_type](data=labels[nearest])
                else:
                    twist = store.types["geometry_msgs/msg/Twist"](
                        linear=store.types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                        angular=store.types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=labels[nearest]),
                    )
                    message = store.types[steering_type](header=_header(store, stamp, "base_link", False), twist=twist)
                writer.write(steering, stamp, store.serialize_cdr(message, steering_type))
    return path
