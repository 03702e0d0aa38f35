"""Drive the simulated road with qattn_steering, in closed loop, optionally watching in RViz.

ros2 launch qattn_ros sim.launch.py checkpoint:=/path/best.safetensors rviz:=true

The simulator renders the synthetic road from the car's pose and moves the car with the node's
cmd_vel (steering.launch.py, included). The launch ends when the track is driven and the report
written (status 0), or when any node dies (status 1, one line naming it). The same graph runs
without a ROS install as `qattn_sim --checkpoint ...`.
"""

from pathlib import Path

from launch.actions import OpaqueFunction

from launch import LaunchDescription
from qattn_ros.ros import launch_rules
from qattn_ros.ros.launch_actions import declare, refuse_unknown, sim_graph

SHARE = Path(__file__).resolve().parents[1]  # share/qattn_ros (or the source tree): launch/ and config/


def generate_launch_description() -> LaunchDescription:
    arguments = launch_rules.SIM_ARGUMENTS
    return LaunchDescription([*declare(arguments), refuse_unknown(arguments),
                              OpaqueFunction(function=sim_graph(SHARE))])  # fmt: skip
