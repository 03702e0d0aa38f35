"""Replay a recorded drive through qattn_steering and evaluate, online, the attention it publishes.

ros2 launch qattn_ros replay_eval.launch.py bag:=HMB_1.bag checkpoint:=/path/best.safetensors out:=reports/replay

The bag player (recorded stamps, /clock, ground truth), the steering node on sim time
(steering.launch.py, included) and the replay evaluator. The launch ends when the evaluator has
written the report (status 0), or when any node dies (status 1, one line naming it). The same
graph runs without a ROS install as `qattn_replay <bag> --checkpoint ... --out ...`.
"""

from pathlib import Path

from launch.actions import OpaqueFunction

from launch import LaunchDescription
from qattn_ros.ros import launch_rules
from qattn_ros.ros.launch_actions import declare, refuse_unknown, replay_graph

SHARE = Path(__file__).resolve().parents[1]  # share/qattn_ros (or the source tree): launch/ and config/


def generate_launch_description() -> LaunchDescription:
    arguments = launch_rules.REPLAY_ARGUMENTS
    return LaunchDescription([*declare(arguments), refuse_unknown(arguments),
                              OpaqueFunction(function=replay_graph(SHARE))])  # fmt: skip
