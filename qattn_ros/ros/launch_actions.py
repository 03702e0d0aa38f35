"""The launch files' actions, built from launch_rules when the launch runs (needs `launch` and `launch_ros`).

Each node is made inside an OpaqueFunction from the resolved argument values, so that only the
arguments a user gave reach it, typed as its parameters are, and an unknown one stops the launch.
Every node gets an exit handler with graph.exit_verdict's rules: a node that dies ends the launch
with status 1 and one line naming it (launch exits non-zero only on an exception, so the handler
raises one); the graph's main node ending normally shuts the launch down. A node's exit while the
launch is already stopping (Ctrl-C) is part of the stop: the handler does nothing, so no second
Shutdown reaches launch_ros's ROS adapter ("Cannot shutdown a ROS adapter that is not running").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    GroupAction,
    IncludeLaunchDescription,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

from . import launch_rules as rules
from .graph import exit_verdict

PACKAGE = "qattn_ros"


class GraphStopped(RuntimeError):
    """Raised to end a launch with status 1: launch prints it as one line ("Caught exception in launch: ...")."""


def declare(arguments: Sequence[rules.Argument]) -> list[DeclareLaunchArgument]:
    return [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description) for a in arguments]


def refuse_unknown(arguments: Sequence[rules.Argument]) -> OpaqueFunction:
    """Stop the launch if it was given an argument it does not know (a typo would otherwise pass silently)."""

    def check(context) -> None:
        if reason := rules.refused(context.launch_configurations, arguments):
            raise GraphStopped(reason)

    return OpaqueFunction(function=check)


def end_graph_on_exit(node, name: str, main: bool = False, done: str = "") -> RegisterEventHandler:
    def on_exit(event, context):
        if context.is_shutdown:
            return None
        verdict = exit_verdict(name, event.returncode, main, done)
        if verdict.failed:
            raise GraphStopped(verdict.reason)
        return None if verdict.reason is None else [EmitEvent(event=Shutdown(reason=verdict.reason))]

    return RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit))


def typed_parameters(params: dict[str, object]) -> dict[str, object]:
    """Strings kept strings: launch_ros would otherwise read '1' or 'true' as YAML."""
    return {k: ParameterValue(v, value_type=str) if isinstance(v, str) else v for k, v in params.items()}


def node_with_exit(node, name: str, main: bool = False, done: str = "") -> list:
    return [node, end_graph_on_exit(node, name, main, done)]


def steering_graph(share: Path) -> Callable:
    """OpaqueFunction body of steering.launch.py: the steering node (and RViz), from the given arguments."""

    def build(context) -> list:
        given = context.launch_configurations
        arguments = rules.steering_arguments(share)
        if reason := rules.refused(given, arguments):
            raise GraphStopped(reason)
        overrides = rules.node_parameters(arguments, given, rules.STEERING_NODE)
        namespace, image_topic = given["namespace"], given["image_topic"]
        steering = LifecycleNode(
            package=PACKAGE,
            executable="qattn_steering",
            name=rules.STEERING_NODE,
            namespace=namespace,
            output="screen",
            parameters=[given["params_file"], *([typed_parameters(overrides)] if overrides else [])],
            remappings=rules.steering_remaps(image_topic, given["cmd_vel_topic"]),
        )
        actions = []
        if rules.flag(arguments, given, "rviz"):
            rviz = Node(
                package="rviz2",
                executable="rviz2",
                namespace=namespace,
                arguments=["-d", str(share / rules.RVIZ_CONFIG)],
                parameters=[{"use_sim_time": bool(overrides.get("use_sim_time", False))}],
                remappings=rules.rviz_remaps(image_topic),
            )
            # first: without rviz2 installed launch stops on it before the steering node starts (a node still
            # starting when launch stops on an error was seen to outlive the launch)
            actions += node_with_exit(rviz, "rviz2")
        return actions + node_with_exit(steering, rules.STEERING_NODE, main=True, done="qattn_steering shut down")

    return build


def include_steering(share: Path, arguments: dict[str, str]) -> GroupAction:
    """steering.launch.py with only `arguments` (forwarding=False: the including file's own arguments stay out,
    so steering.launch.py refuses nothing it did not get)."""
    source = PythonLaunchDescriptionSource(str(share / "launch" / "steering.launch.py"))
    return GroupAction([IncludeLaunchDescription(source)], forwarding=False, launch_configurations=arguments)


def replay_graph(share: Path) -> Callable:
    """OpaqueFunction body of replay_eval.launch.py: player, evaluator, the steering node included."""

    def build(context) -> list:
        given = context.launch_configurations
        params = {n: rules.node_parameters(rules.REPLAY_ARGUMENTS, given, n) for n in (rules.PLAYER, rules.EVALUATOR)}
        player = Node(package=PACKAGE, executable="qattn_bag_player", name=rules.PLAYER, output="screen",
                      parameters=[typed_parameters({**params[rules.PLAYER], **rules.REPLAY_PLAYER_FIXED})])  # fmt: skip
        evaluator = Node(package=PACKAGE, executable="qattn_replay_evaluator", name=rules.EVALUATOR, output="screen",
                         parameters=[typed_parameters(params[rules.EVALUATOR])])  # fmt: skip
        steering = rules.included_steering(given, rules.REPLAY_STEERING, rules.REPLAY_STEERING_FIXED)
        return [
            include_steering(share, steering),  # first, with its RViz (see steering_graph)
            *node_with_exit(player, rules.PLAYER),
            *node_with_exit(evaluator, rules.EVALUATOR, main=True, done="replay evaluated: report written"),
        ]

    return build


def sim_graph(share: Path) -> Callable:
    """OpaqueFunction body of sim.launch.py: the simulator, the steering node included."""

    def build(context) -> list:
        given = context.launch_configurations
        simulator = Node(package=PACKAGE, executable="qattn_simulator", name=rules.SIMULATOR, output="screen",
                         parameters=[typed_parameters(rules.node_parameters(rules.SIM_ARGUMENTS, given,
                                                                            rules.SIMULATOR))])  # fmt: skip
        steering = rules.included_steering(given, rules.SIM_STEERING, rules.SIM_STEERING_FIXED)
        return [
            include_steering(share, steering),  # first, with its RViz (see steering_graph)
            *node_with_exit(simulator, rules.SIMULATOR, main=True, done="track driven: report written"),
        ]

    return build
