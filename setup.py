"""ament_python package setup: colcon on a ROS 2 install, or pip in a virtual environment."""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

package_name = "qattn_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=[package_name, f"{package_name}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        (f"share/{package_name}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{package_name}/config/models", glob("config/models/*.yaml")),
        (f"share/{package_name}/config/train", glob("config/train/*.yaml")),
        # the shipped models (models/manifest.json names them; qattn_ros/inference/shipped.py finds them here)
        (f"share/{package_name}/models", glob("models/*.json") + glob("models/*.md")),
        *[(f"share/{package_name}/models/{Path(d).name}", glob(f"{d}/*")) for d in sorted(glob("models/*/"))],
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="qattn_ros developers",
    maintainer_email="qattn-ros@example.org",
    description="Steering network with quantized sign-bit attention (Tashiro & Awano 2023) as a ROS 2 node",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "qattn_steering = qattn_ros.ros.entry_points:steering_node",
            "qattn_camera = qattn_ros.ros.entry_points:camera_publisher",
            "qattn_bag_player = qattn_ros.ros.entry_points:bag_player",
            "qattn_replay_evaluator = qattn_ros.ros.entry_points:replay_evaluator",
            "qattn_simulator = qattn_ros.ros.entry_points:simulator",
            "qattn_replay = qattn_ros.ros.entry_points:replay",
            "qattn_sim = qattn_ros.ros.entry_points:sim_drive",
            "qattn_export = qattn_ros.inference.export:main",
            # the names before 0.2, kept for one release
            "steering_node = qattn_ros.ros.entry_points:steering_node",
            "camera_publisher = qattn_ros.ros.entry_points:camera_publisher",
            "bag_player = qattn_ros.ros.entry_points:bag_player",
            "replay_evaluator = qattn_ros.ros.entry_points:replay_evaluator",
            "simulator = qattn_ros.ros.entry_points:simulator",
        ],
    },
)
