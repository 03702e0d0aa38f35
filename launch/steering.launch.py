"""Run qattn_steering on a camera topic, optionally with RViz showing its camera and attention.

ros2 launch qattn_ros steering.launch.py checkpoint:=/path/best.safetensors image_topic:=/camera/image_raw rviz:=true

Every parameter of config/steering_node.yaml is also a launch argument (cruise_speed:=5.0); only
those given are passed, after `params_file`, and an unknown argument stops the launch. qattn_steering
is a managed (lifecycle) node: with autostart true (the default) it configures and activates itself,
with autostart:=false it waits for `ros2 lifecycle set` transitions. The node dying ends the launch
with status 1. The arguments and the rules: qattn_ros/ros/launch_rules.py.
"""

from pathlib import Path

from launch.actions import OpaqueFunction

from launch import LaunchDescription
from qattn_ros.ros import launch_rules
from qattn_ros.ros.launch_actions import declare, steering_graph

SHARE = Path(__file__).resolve().parents[1]  # share/qattn_ros (or the source tree): launch/ and config/


def generate_launch_description() -> LaunchDescription:
    arguments = launch_rules.steering_arguments(SHARE)
    return LaunchDescription([*declare(arguments), OpaqueFunction(function=steering_graph(SHARE))])
