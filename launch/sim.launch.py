"""Drive the simulated road with qattn_steering, in closed loop, optionally watching in RViz.

ros2 launch qattn_ros sim.launch.py checkpoint:=/path/best.safetensors rviz:=true

The simulator renders the synthetic road from the car's pose and moves the car with the node's
cmd_vel; the graph shuts down when the track is driven and the report is written. The same
graph runs without a ROS install as `qattn_sim --checkpoint ...`.
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
    simulator = Node(
        package="qattn_ros",
        executable="simulator",
        name="qattn_simulator",
        output="screen",
        parameters=[
            {
                "track_seed": ParameterValue(arg("track_seed"), value_type=int),
                "length_km": ParameterValue(arg("km"), value_type=float),
                "mode": arg("mode"),
                "rate": ParameterValue(arg("rate"), value_type=float),
                "width": ParameterValue(arg("width"), value_type=int),
                "height": ParameterValue(arg("height"), value_type=int),
                "transport": arg("transport"),
                "report": arg("report"),
            }
        ],
    )
    return LaunchDescription([
        DeclareLaunchArgument("checkpoint", description="path to <name>.safetensors (sidecar <name>.json beside it)"),
        DeclareLaunchArgument("track_seed", default_value="1000", description="held-out tracks: 1000-1999"),
        DeclareLaunchArgument("km", default_value="2.0", description="track length"),
        DeclareLaunchArgument("speed", default_value="15.0", description="m/s: the node's cruise_speed"),
        DeclareLaunchArgument("mode", default_value="lockstep", description="lockstep | realtime"),
        DeclareLaunchArgument("rate", default_value="20.0", description="camera Hz"),
        DeclareLaunchArgument("width", default_value="320", description="camera width"),
        DeclareLaunchArgument("height", default_value="160", description="camera height"),
        DeclareLaunchArgument("transport", default_value="raw", description="raw | compressed"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("report", default_value="reports/sim", description="closed-loop report folder"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with the attention view"),
        # one machine's graph over shared memory (as qattn_replay / qattn_sim), unless you set another
        SetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS",
                               EnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", default_value=LOCAL_TRANSPORTS)),
        simulator,
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
                    "use_sim_time": True,
                    "transport": arg("transport"),
                    "reliability": "reliable",
                    "cruise_speed": ParameterValue(arg("speed"), value_type=float),
                },
            ],
        ),
        RegisterEventHandler(OnProcessExit(
            target_action=simulator,
            on_exit=[EmitEvent(event=Shutdown(reason="track driven: report written"))],
        )),
        Node(
            package="rviz2",
            executable="rviz2",
            arguments=["-d", os.path.join(share, "config", "attention.rviz")],
            parameters=[{"use_sim_time": True}],
            condition=IfCondition(arg("rviz")),
        ),
    ])  # fmt: skip
