"""The replay's recording: camera and node outputs, as they came, in an mcap ROS 2 bag (rosbags' writer).

Each run records beside the earlier ones (`<out>/recording/run_N`, the bag inside `run_N.mcap`); RViz,
Foxglove and the project's readers open it. Closing writes the bag's metadata.yaml: an unclosed bag is
unreadable. A run is recorded inside a hidden folder and moved into place when closed, so a run_N folder is
always a whole bag; what a killed run left (`.run_N.partial`) is removed by the next one, by name.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..core.atomic import commit_folder

RECORDED = {  # topic (relative, remappable) -> message type, as the recording names it
    "image": "sensor_msgs/msg/Image",
    "steering_angle": "sensor_msgs/msg/JointState",
    "ground_truth/steering_angle": "sensor_msgs/msg/JointState",
    "attention/map": "sensor_msgs/msg/Image",
    "attention/overlay": "sensor_msgs/msg/Image",
    "cmd_vel": "geometry_msgs/msg/TwistStamped",
}


class Recording:
    """An open mcap bag in `folder/run_N`; `resolve` turns a relative topic into the name it is recorded under."""

    def __init__(self, folder: Path, resolve) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        store = get_typestore(Stores.ROS2_HUMBLE)
        folder.mkdir(parents=True, exist_ok=True)
        self.removed = sorted(d for d in folder.iterdir() if re.fullmatch(r"\.run_\d+\.partial", d.name))
        for leftover in self.removed:  # a run killed before it closed its bag: no metadata, unreadable
            shutil.rmtree(leftover, ignore_errors=True)
        runs = [int(m[1]) for d in folder.iterdir() if (m := re.fullmatch(r"run_(\d+)", d.name))]
        self.path = folder / f"run_{1 + max(runs, default=0)}"
        # the bag is written under its final name (rosbags names the .mcap after its folder) inside a hidden folder
        self.holder = folder / f".{self.path.name}.partial"
        self.partial = self.holder / self.path.name
        self.holder.mkdir()
        self.writer = Writer(self.partial, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.connections = {topic: self.writer.add_connection(resolve(topic), kind, typestore=store)
                            for topic, kind in RECORDED.items()}  # fmt: skip

    def write(self, topic: str, raw: bytes, stamp_ns: int) -> None:
        if self.writer is not None:
            self.writer.write(self.connections[topic], stamp_ns, raw)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            commit_folder(self.partial, self.path)
            shutil.rmtree(self.holder, ignore_errors=True)
