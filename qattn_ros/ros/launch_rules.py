"""What the launch files decide, in plain Python (no `launch` needed): their arguments, what each argument
sets on which node, and which given arguments are refused.

launch_actions.py turns these into launch actions; tests read them directly. The steering node's
arguments come from config/steering_node.yaml, the one place its defaults live: every node
parameter is a launch argument, empty by default, and only the ones the user gives are passed,
after the params file, so a params file is never overridden by a launch default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

# configurations `launch` itself reads (ExecuteProcess, ros2 launch --launch-prefix): never refused
LAUNCH_OWN = frozenset({"sigterm_timeout", "sigkill_timeout", "emulate_tty", "launch-prefix", "launch-prefix-filter"})
PARAMS_FILE = Path("config") / "steering_node.yaml"  # under the package's share folder (or the source tree)
RVIZ_CONFIG = Path("config") / "attention.rviz"
TYPES = {"str": str, "int": int, "float": float, "bool": bool}


class LaunchArgumentError(ValueError):
    """A launch argument that cannot take effect: unknown, or not of its parameter's type."""


@dataclass(frozen=True)
class Argument:
    """A launch argument: `node` gets it as parameter `param` (typed `kind`); node None: the launch file uses it."""

    name: str
    default: str | None  # None: required
    description: str
    node: str | None = None
    param: str = ""
    kind: str = "str"


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError("not true or false")
    return lowered == "true"


def typed(argument: Argument, text: str) -> object:
    """The argument's text as its parameter's type; LaunchArgumentError naming it if it is not one."""
    try:
        return _bool(text) if argument.kind == "bool" else TYPES[argument.kind](text)
    except ValueError:
        whose = f"{argument.node}'s {argument.param}" if argument.node else "it"
        raise LaunchArgumentError(f"launch argument {argument.name}:={text}: {whose} takes a {argument.kind}") from None


def flag(arguments: Iterable[Argument], given: Mapping[str, str], name: str) -> bool:
    """A true/false argument the launch file itself reads (rviz)."""
    return bool(typed(next(a for a in arguments if a.name == name), given[name]))


def node_parameters(arguments: Iterable[Argument], given: Mapping[str, str], node: str) -> dict[str, object]:
    """The parameters `node` gets from the arguments: typed; an empty optional argument passes nothing."""
    return {a.param: typed(a, given[a.name]) for a in arguments if a.node == node and given.get(a.name, "") != ""}


def refused(given: Iterable[str], arguments: Iterable[Argument]) -> str | None:
    """Why the given launch arguments are refused (one line), or None: unknown names never pass silently."""
    known = {a.name for a in arguments} | LAUNCH_OWN
    unknown = sorted(set(given) - known)
    if not unknown:
        return None
    return f"unknown launch argument {', '.join(unknown)} (known: {', '.join(sorted(known - LAUNCH_OWN))})"


# -- the steering node ------------------------------------------------------------------------------------------
STEERING_NODE = "qattn_steering"


def steering_parameters(params_file: Path) -> list[Argument]:
    """One argument per parameter of the params file, empty by default, described by its comment there."""
    text = params_file.read_text()
    values = yaml.safe_load(text)["/**"]["ros__parameters"]
    comments: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if entry := re.match(r"\s{4}(\w+):[^#]*#\s*(.*)", line):
            last = entry[1]
            comments[last] = entry[2].strip()
        elif (more := re.match(r"\s+#\s*(.*)", line)) and last:
            comments[last] += " " + more[1].strip()
    described = {name: f"{' '.join(comments.get(name, name).split())} (the package's params file: {json.dumps(value)})"
                 for name, value in values.items()}  # fmt: skip
    return [Argument(n, "", described[n], STEERING_NODE, n, type(v).__name__) for n, v in values.items()]


def steering_arguments(share: Path) -> list[Argument]:
    """The launch arguments of steering.launch.py."""
    return [
        Argument("namespace", "", "namespace of the node, its topics and RViz"),
        Argument("params_file", str(share / PARAMS_FILE), "YAML of qattn_steering parameters (keyed /**: any "
                 "namespace); arguments given on the command line override it"),
        Argument("image_topic", "image", "camera topic (relative: in the namespace; raw; compressed: "
                 "<image_topic>/compressed)"),
        Argument("cmd_vel_topic", "cmd_vel", "where commands go"),
        Argument("rviz", "false", "start RViz with the camera and attention overlay of this node", kind="bool"),
        Argument("use_sim_time", "", "follow /clock (replay, simulator)", STEERING_NODE, "use_sim_time", "bool"),
        *steering_parameters(share / PARAMS_FILE),
    ]  # fmt: skip


def steering_remaps(image_topic: str, cmd_vel_topic: str) -> list[tuple[str, str]]:
    return [("image", image_topic), ("image/compressed", f"{image_topic}/compressed"), ("cmd_vel", cmd_vel_topic)]


def rviz_remaps(image_topic: str) -> list[tuple[str, str]]:
    """attention.rviz names /image and /attention/overlay: to the camera the node reads and the node's overlay
    (relative: in the namespace RViz shares with the node)."""
    return [("/image", image_topic), ("/attention/overlay", "attention/overlay")]


# -- replay_eval.launch.py -------------------------------------------------------------------------------------
PLAYER, EVALUATOR = "qattn_bag_player", "qattn_replay_evaluator"
REPLAY_ARGUMENTS = [
    Argument("bag", None, "ROS 1 / ROS 2 bag, dataset folder, or a YAML mapping {kind: ...}", PLAYER, "source"),
    Argument("checkpoint", None, "path to <name>.safetensors (sidecar <name>.json beside it)", EVALUATOR,
             "checkpoint"),
    Argument("out", None, "report folder (rerun to resume)", EVALUATOR, "out"),
    Argument("mode", "lockstep", "lockstep | realtime", PLAYER, "mode"),
    Argument("rate", "1.0", "realtime: playback speed factor", PLAYER, "rate", "float"),
    Argument("start", "0.0", "s into the recording", PLAYER, "start", "float"),
    Argument("duration", "0.0", "s to play (0: to the end)", PLAYER, "duration", "float"),
    Argument("answer_timeout", "20.0", "s to wait for each answer", PLAYER, "answer_timeout", "float"),
    Argument("startup_timeout", "60.0", "s to wait for the graph", PLAYER, "startup_timeout", "float"),
    Argument("bag_camera_topic", "", "a ROS 2 bag's camera topic", PLAYER, "bag_camera_topic"),
    Argument("bag_steering_topic", "", "a ROS 2 bag's steering topic", PLAYER, "bag_steering_topic"),
    Argument("every", "1", "evaluate one frame in N", EVALUATOR, "every", "int"),
    Argument("steps", "50", "deletion / insertion steps", EVALUATOR, "steps", "int"),
    Argument("group", "32", "frames evaluated (and saved) together", EVALUATOR, "group", "int"),
    Argument("record", "true", "record camera + outputs to mcap", EVALUATOR, "record", "bool"),
    Argument("device", "auto", "auto | cpu | cuda | cuda:N (the evaluator and qattn_steering)", EVALUATOR, "device"),
    Argument("backend", "torch", "the steering node's: torch | onnxruntime | onnxruntime:tensorrt"),
    Argument("rviz", "false", "start RViz with the attention view", kind="bool"),
]  # fmt: skip
# No progress bar under launch: launch prints a process's output a line at a time, so a bar redrawn with
# carriage returns arrives at the end as one line of them; with emulate_tty the pseudo-terminal is 0 columns
# wide and tqdm draws nothing at all. The player's log lines and replay/status say where a replay is.
REPLAY_PLAYER_FIXED = {"progress": False}
# what replay_eval.launch.py passes to steering.launch.py: its own arguments by name, and fixed values
REPLAY_STEERING = {"checkpoint": "checkpoint", "device": "device", "backend": "backend", "rviz": "rviz"}
REPLAY_STEERING_FIXED = {"use_sim_time": "true", "reliability": "reliable", "camera_timeout": "10.0"}

# -- sim.launch.py ---------------------------------------------------------------------------------------------
SIMULATOR = "qattn_simulator"
SIM_ARGUMENTS = [
    Argument("checkpoint", "default", "a shipped model (default, sim_roads) or <name>.safetensors (.json beside it)"),
    Argument("track_seed", "1000", "held-out tracks: 1000-1999", SIMULATOR, "track_seed", "int"),
    Argument("km", "2.0", "track length", SIMULATOR, "length_km", "float"),
    Argument("speed", "15.0", "m/s: the node's cruise_speed", kind="float"),
    Argument("mode", "lockstep", "lockstep | realtime", SIMULATOR, "mode"),
    Argument("rate", "20.0", "camera Hz", SIMULATOR, "rate", "float"),
    Argument("width", "320", "camera width", SIMULATOR, "width", "int"),
    Argument("height", "160", "camera height", SIMULATOR, "height", "int"),
    Argument("transport", "raw", "raw | compressed (the simulator and qattn_steering)", SIMULATOR, "transport"),
    Argument("device", "auto", "auto | cpu | cuda | cuda:N"),
    Argument("report", "reports/sim", "closed-loop report folder", SIMULATOR, "report"),
    Argument("rviz", "false", "start RViz with the attention view", kind="bool"),
]  # fmt: skip
SIM_STEERING = {"checkpoint": "checkpoint", "device": "device", "transport": "transport", "cruise_speed": "speed",
                "rviz": "rviz"}  # fmt: skip
SIM_STEERING_FIXED = {"use_sim_time": "true", "reliability": "reliable"}


def included_steering(given: Mapping[str, str], forwarded: Mapping[str, str], fixed: Mapping[str, str]) -> dict:
    """The arguments a graph passes to steering.launch.py: its own (steering name -> graph name) and fixed ones."""
    return {**{name: given[own] for name, own in forwarded.items()}, **fixed}
