"""Replay a recorded drive through qattn_steering and evaluate, online, the attention it publishes.

ros2 launch qattn_ros replay_eval.launch.py bag:=HMB_1.bag checkpoint:=/path/best.safetensors out:=reports/replay

The bag player (recorded stamps, /clock, ground truth), the steering node on sim time and the
replay evaluator; the whole graph shuts down when the evaluator has written the report. The
same graph runs without a ROS install as `qattn_replay <bag> --checkpoint ... --out ...`.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription
from qattn_ros.ros.graph import LOCAL_TRANSPORTS


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("qattn_ros")
    arg = LaunchConfiguration
    evaluator = Node(
        package="qattn_ros",
        executable="replay_evaluator",
        name="qattn_replay_evaluator",
        output="screen",
        parameters=[
            {
                "checkpoint": arg("checkpoint"),
                "out": arg("out"),
                "device": arg("device"),
                "every": ParameterValue(arg("every"), value_type=int),
                "steps": ParameterValue(arg("steps"), value_type=int),
                "group": ParameterValue(arg("group"), value_type=int),
                "record": ParameterValue(arg("record"), value_type=bool),
            }
        ],
    )
    return LaunchDescription([
        DeclareLaunchArgument("bag", description="ROS 1 / ROS 2 bag, dataset folder, or a YAML mapping {kind: ...}"),
        DeclareLaunchArgument("checkpoint", description="path to <name>.safetensors (sidecar <name>.json beside it)"),
        DeclareLaunchArgument("out", description="report folder (rerun to resume)"),
        DeclareLaunchArgument("mode", default_value="lockstep", description="lockstep | realtime"),
        DeclareLaunchArgument("rate", default_value="1.0", description="realtime: playback speed factor"),
        DeclareLaunchArgument("start", default_value="0.0", description="s into the recording"),
        DeclareLaunchArgument("duration", default_value="0.0", description="s to play (0: to the end)"),
        DeclareLaunchArgument("every", default_value="1", description="evaluate one frame in N"),
        DeclareLaunchArgument("steps", default_value="50", description="deletion / insertion steps"),
        DeclareLaunchArgument("group", default_value="32", description="frames evaluated (and saved) together"),
        DeclareLaunchArgument("record", default_value="true", description="record camera + outputs to mcap"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("backend", default_value="torch", description="the steering node's: torch | onnxruntime"),
        DeclareLaunchArgument("answer_timeout", default_value="20.0", description="s to wait for each answer"),
        DeclareLaunchArgument("startup_timeout", default_value="60.0", description="s to wait for the graph"),
        DeclareLaunchArgument("bag_camera_topic", default_value="", description="a ROS 2 bag's camera topic"),
        DeclareLaunchArgument("bag_steering_topic", default_value="", description="a ROS 2 bag's steering topic"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with the attention view"),
        # one machine's graph over shared memory (as qattn_replay / qattn_sim), unless you set another
        SetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS",
                               EnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", default_value=LOCAL_TRANSPORTS)),
        Node(
            package="qattn_ros",
            executable="bag_player",
            name="qattn_bag_player",
            output="screen",
            parameters=[{
                "source": arg("bag"),
                "mode": arg("mode"),
                "rate": ParameterValue(arg("rate"), value_type=float),
                "start": ParameterValue(arg("start"), value_type=float),
                "duration": ParameterValue(arg("duration"), value_type=float),
                "answer_timeout": ParameterValue(arg("answer_timeout"), value_type=float),
                "startup_timeout": ParameterValue(arg("startup_timeout"), value_type=float),
                "bag_camera_topic": arg("bag_camera_topic"),
                "bag_steering_topic": arg("bag_steering_topic"),
            }],
        ),
        LifecycleNode(
            package="qattn_ros",
            executable="steering_node",
            name="qattn_steering",
            namespace="",
            output="screen",
            parameters=[
                os.path.join(share, "config", "steering_node.yaml"),
                {
                    "checkpoint": arg("checkpoint"),
                    "device": arg("device"),
                    "backend": arg("backend"),
                    "use_sim_time": True,
                    "reliability": "reliable",
                    "camera_timeout": 10.0,
                },
            ],
        ),
        evaluator,
        RegisterEventHandler(OnProcessExit(
            target_action=evaluator,
            on_exit=[EmitEvent(event=Shutdown(reason="replay evaluated: report written"))],
        )),
        Node(
            package="rviz2",
            executable="rviz2",
            arguments=["-d", os.path.join(share, "config", "attention.rviz")],
            parameters=[{"use_sim_time": True}],
            condition=IfCondition(arg("rviz")),
        ),
    ])  # fmt: skip
