"""Run qattn_steering on a camera topic, optionally with RViz showing the attention.

ros2 launch qattn_ros steering.launch.py checkpoint:=/path/best.safetensors image_topic:=/camera/image_raw rviz:=true

qattn_steering is a managed (lifecycle) node; with autostart:=true (the default) it configures
and activates itself, with autostart:=false it waits for `ros2 lifecycle set` transitions.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("qattn_ros")
    image_topic = LaunchConfiguration("image_topic")
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    return LaunchDescription([
        DeclareLaunchArgument("checkpoint", description="path to <name>.safetensors (sidecar <name>.json beside it)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock (replay, simulator)"),
        DeclareLaunchArgument("autostart", default_value="true", description="configure and activate at start"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("image_topic", default_value="/image", description="camera topic (raw)"),
        DeclareLaunchArgument("transport", default_value="raw", description="raw | compressed"),
        DeclareLaunchArgument("cmd_vel_topic", default_value="cmd_vel", description="where commands go"),
        DeclareLaunchArgument("cmd_vel_type", default_value="twist_stamped", description="twist_stamped | twist"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "steering_node.yaml")),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with the attention view"),
        LifecycleNode(
            package="qattn_ros",
            executable="steering_node",
            name="qattn_steering",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[
                LaunchConfiguration("params_file"),
                {
                    "checkpoint": LaunchConfiguration("checkpoint"),
                    "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
                    "device": LaunchConfiguration("device"),
                    "transport": LaunchConfiguration("transport"),
                    "cmd_vel_type": LaunchConfiguration("cmd_vel_type"),
                    "use_sim_time": use_sim_time,
                },
            ],
            remappings=[
                ("image", image_topic),
                ("image/compressed", [image_topic, "/compressed"]),
                ("cmd_vel", LaunchConfiguration("cmd_vel_topic")),
            ],
        ),
        Node(
            package="rviz2",
            executable="rviz2",
            namespace=LaunchConfiguration("namespace"),
            arguments=["-d", os.path.join(share, "config", "attention.rviz")],
            parameters=[{"use_sim_time": use_sim_time}],
            condition=IfCondition(LaunchConfiguration("rviz")),
        ),
    ])  # fmt: skip
