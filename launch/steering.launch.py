"""Run qattn_steering on a camera topic, optionally with RViz showing the attention.

ros2 launch qattn_ros steering.launch.py checkpoint:=/path/best.safetensors image_topic:=/camera/image_raw rviz:=true
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("qattn_ros")
    image_topic = LaunchConfiguration("image_topic")
    return LaunchDescription([
        DeclareLaunchArgument("checkpoint", description="path to <name>.safetensors (sidecar <name>.json beside it)"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("image_topic", default_value="/image", description="camera topic (raw)"),
        DeclareLaunchArgument("transport", default_value="raw", description="raw | compressed"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "steering_node.yaml")),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with the attention view"),
        Node(
            package="qattn_ros",
            executable="steering_node",
            name="qattn_steering",
            output="screen",
            parameters=[
                LaunchConfiguration("params_file"),
                {
                    "checkpoint": LaunchConfiguration("checkpoint"),
                    "device": LaunchConfiguration("device"),
                    "transport": LaunchConfiguration("transport"),
                },
            ],
            remappings=[("image", image_topic), ("image/compressed", [image_topic, "/compressed"])],
        ),
        Node(
            package="rviz2",
            executable="rviz2",
            arguments=["-d", os.path.join(share, "config", "attention.rviz")],
            condition=IfCondition(LaunchConfiguration("rviz")),
        ),
    ])  # fmt: skip
