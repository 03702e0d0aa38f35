"""The launch files' behaviour without `launch`: what they start (launch_reader), and those nodes run for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import yaml
from processes import output, spawn

from benchmarks.launch_reader import ROOT, Context, entry_points, load
from qattn_ros.explain.engine import read_results
from qattn_ros.ros import launch_rules, replay, sim_drive
from qattn_ros.ros.dds_domain import claim_domain_id
from qattn_ros.ros.graph import stop_as_launch_does

LAUNCH = ROOT / "launch"
REQUIRED = {
    "steering.launch.py": {},
    "replay_eval.launch.py": {"bag": "drive.bag", "checkpoint": "/c.safetensors", "out": "reports/r"},
    "sim.launch.py": {"checkpoint": "/c.safetensors"},
}


def _probe(argument: launch_rules.Argument, default: str) -> str:
    """Another valid value of the argument's kind, to see whether it reaches a node."""
    if argument.kind == "bool":
        return "false" if default == "true" else "true"
    if argument.kind in ("int", "float"):
        return str(launch_rules.TYPES[argument.kind](default or 0) + 3)
    return f"{default.rstrip('/')}_probe" if default.startswith("/") else "probe"


def _started(launched) -> dict:
    """Everything about the started nodes that a launch argument could change."""
    return {n.full_name: (n.executable, n.parameter_dict(), [p for p in n.parameters if isinstance(p, str)],
                          n.remappings, n.kwargs.get("arguments")) for n in launched.nodes}  # fmt: skip


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_node_has_an_exit_handler_and_every_argument_reaches_a_node(name) -> None:
    path = LAUNCH / name
    given = {**REQUIRED[name], "rviz": "true"}
    launched = load(path, given)
    assert launched.nodes
    for node in launched.nodes:
        assert len(node.on_exit) == 1, f"{node.name}: one exit handler"
        assert node.executable == "rviz2" or node.executable in entry_points(), node.executable
    reference = _started(launched)
    own = {k: v for k, v in launched.arguments.items() if ":" not in k}
    for argument_name, declared in own.items():
        argument = next(a for a in _arguments(name) if a.name == argument_name)
        default = given.get(argument_name, declared.kwargs["default_value"])
        probed = load(path, {**given, argument_name: _probe(argument, default)})
        assert _started(probed) != reference, f"{name}: {argument_name} reaches no node"


def _arguments(name: str) -> list[launch_rules.Argument]:
    return {"steering.launch.py": launch_rules.steering_arguments(ROOT), "replay_eval.launch.py":
            launch_rules.REPLAY_ARGUMENTS, "sim.launch.py": launch_rules.SIM_ARGUMENTS}[name]  # fmt: skip


def test_every_steering_parameter_is_an_argument_and_only_given_ones_are_passed(tmp_path) -> None:
    """The params file is the one source of defaults: nothing overrides it unless the user says so."""
    params = yaml.safe_load((ROOT / "config" / "steering_node.yaml").read_text())["/**"]["ros__parameters"]
    launched = load(LAUNCH / "steering.launch.py", {})
    assert set(params) <= set(launched.arguments)
    node = launched.node("qattn_steering")
    assert node.parameters == [str(ROOT / "config" / "steering_node.yaml")], "no launch default on top of it"
    given = {"cruise_speed": "5", "autostart": "False", "max_pixels": "1000", "device": "cpu", "checkpoint": "1"}
    node = load(LAUNCH / "steering.launch.py", {**given, "params_file": "/mine.yaml"}).node("qattn_steering")
    assert node.parameters[0] == "/mine.yaml"
    assert node.parameter_dict() == {"cruise_speed": 5.0, "autostart": False, "max_pixels": 1000, "device": "cpu",
                                     "checkpoint": "1"}  # fmt: skip
    assert type(node.parameters[1]["checkpoint"]).__name__ == "ParameterValue", "'1' stays a string"


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_unknown_or_mistyped_arguments_stop_the_launch(name) -> None:
    with pytest.raises(Exception, match="unknown launch argument crusie_speed") as raised:
        load(LAUNCH / name, {**REQUIRED[name], "crusie_speed": "5.0"})
    assert type(raised.value).__name__ == "GraphStopped"
    with pytest.raises(launch_rules.LaunchArgumentError, match=r"rviz:=yes: it takes a bool"):
        load(LAUNCH / name, {**REQUIRED[name], "rviz": "yes"})
    with pytest.raises(launch_rules.LaunchArgumentError, match=r"cruise_speed:=fast: qattn_steering's cruise_speed"):
        load(LAUNCH / "steering.launch.py", {"cruise_speed": "fast"})


def test_the_graphs_are_the_ones_qattn_replay_and_qattn_sim_start() -> None:
    """The same executables, names and parameter values as the launchers without ROS (graph.run_graph)."""
    cases = [("replay_eval.launch.py", replay.graph(replay.parse_args(["drive.bag", "--checkpoint", "/c.safetensors",
                                                                       "--out", "reports/r"]))),
             ("sim.launch.py", sim_drive.graph(sim_drive.parse_args(["--checkpoint", "/c.safetensors"])))]  # fmt: skip
    for name, graph in cases:
        launched = load(LAUNCH / name, REQUIRED[name])
        for (executable, _, node_name), params in graph:
            node = launched.node(node_name)
            assert node.executable == executable
            bar = {"progress": False} if node_name == "qattn_bag_player" else {}  # no tqdm bar under launch
            assert node.parameter_dict() == {k: v for k, v in params.items() if v != ""} | bar, (name, node_name)


def test_rviz_shows_the_camera_and_overlay_of_the_node() -> None:
    config = yaml.safe_load((ROOT / "config" / "attention.rviz").read_text())
    topics = {d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"]}
    launched = load(LAUNCH / "steering.launch.py", {"rviz": "true", "namespace": "robot1", "image_topic": "/cam"})
    rviz, node = launched.node("rviz2"), launched.node("qattn_steering")
    remaps = dict(rviz.remappings)
    assert set(remaps) == topics and rviz.namespace == node.namespace == "robot1"
    assert remaps["/image"] == dict(node.remappings)["image"] == "/cam"
    assert remaps["/attention/overlay"] == "attention/overlay", "relative: the node's overlay in the namespace"
    assert launched.nodes[0] is rviz, "started first: a missing rviz2 stops the launch before the node runs"
    for name in ("replay_eval.launch.py", "sim.launch.py"):
        assert load(LAUNCH / name, {**REQUIRED[name], "rviz": "true"}).nodes[0].name == "rviz2", name
    assert "rviz2" not in {n.name for n in load(LAUNCH / "steering.launch.py", {}).nodes}


def test_exit_handlers_end_the_graph_with_one_line() -> None:
    launched = load(LAUNCH / "replay_eval.launch.py", REQUIRED["replay_eval.launch.py"])
    running, stopping = Context({}), Context({}, is_shutdown=True)

    def exited(node: str, code: int, context: Context = running):
        return launched.node(node).on_exit[0](SimpleNamespace(returncode=code), context)

    for node, code, how in (("qattn_bag_player", 1, "exited with code 1"),
                            ("qattn_steering", -9, "was killed by SIGKILL"),
                            ("qattn_replay_evaluator", 2, "exited with code 2")):  # fmt: skip
        with pytest.raises(Exception, match=f"^{node} {how} .*: stopping the graph$") as raised:
            exited(node, code)
        assert type(raised.value).__name__ == "GraphStopped" and "\n" not in str(raised.value)
        assert exited(node, code, stopping) is None, "a node stopping with the launch is part of the stop"
    assert exited("qattn_bag_player", 0) is None, "the player may finish before the evaluator"
    (shutdown,) = exited("qattn_replay_evaluator", 0)
    assert shutdown.kwargs["event"].kwargs["reason"] == "replay evaluated: report written"
    assert exited("qattn_replay_evaluator", 0, stopping) is None, "no second Shutdown (the ROS adapter's error)"


# -- the nodes, started exactly as the launch files start them -------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A random kim_canny model (no calibration needed): these tests are about processes, not steering."""
    import torch

    from qattn_ros.core.preprocess import Preprocessing
    from qattn_ros.model import ModelConfig, SteeringNet
    from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint

    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="kim_canny")).eval()
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model", model,
                           CheckpointInfo(model.config, Preprocessing(), "wheel_rad", True))  # fmt: skip
    return str(path)


def _environment() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTDDS_", "FASTRTPS_"))}
    return {**env, "ROS_DOMAIN_ID": str(claim_domain_id()), "PYTHONUNBUFFERED": "1"}


def test_the_package_params_file_takes_effect_under_a_namespace(checkpoint, tmp_path) -> None:
    """namespace:=robot1 with a copy of config/steering_node.yaml (its keys as shipped) saying 3.5 m/s, Twist; the
    camera topic follows the namespace like every other (a camera in robot1 publishing `image`: /robot1/image)."""
    text = (ROOT / "config" / "steering_node.yaml").read_text()
    mine = tmp_path / "mine.yaml"
    mine.write_text(text.replace("cruise_speed: 2.0", "cruise_speed: 3.5").replace("cmd_vel_type: twist_stamped",
                                                                                   "cmd_vel_type: twist"))  # fmt: skip
    launched = load(LAUNCH / "steering.launch.py", {"namespace": "robot1", "params_file": str(mine),
                                                    "checkpoint": checkpoint, "device": "cpu"})  # fmt: skip
    env = _environment()
    node = spawn(launched.node("qattn_steering").command(tmp_path, entry_points()), env=env)
    assert dict(launched.node("qattn_steering").remappings)["image"] == "image", "relative: /robot1/image"
    camera = spawn([sys.executable, "-m", "qattn_ros.ros.camera_publisher", "--ros-args", "-r", "__ns:=/robot1",
                    "-p", "rate:=10.0"], env=env)  # fmt: skip
    probe = """
import sys, rclpy
from geometry_msgs.msg import Twist
from qattn_ros.ros.conventions import init_keeping_signals
init_keeping_signals(None)
node = rclpy.create_node("probe")
got = []
node.create_subscription(Twist, "/robot1/cmd_vel", lambda m: got.append(m.linear.x) if m.linear.x else None, 10)
while not got:
    rclpy.spin_once(node, timeout_sec=0.1)
print("speed", got[0], flush=True)
"""
    try:
        result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=180)
    finally:
        stop_as_launch_does([node, camera])
    assert "speed 3.5" in result.stdout, result.stderr[-2000:] + output(node)[-3000:]


def test_a_node_dying_ends_qattn_replay_non_zero_with_one_line(checkpoint, tmp_path) -> None:
    """The bag player exits 1 (no bag): the graph ends at once, non-zero, saying so in one line."""
    command = [sys.executable, "-m", "qattn_ros.ros.replay", str(tmp_path / "missing.bag"), "--checkpoint",
               checkpoint, "--out", str(tmp_path / "out"), "--device", "cpu"]  # fmt: skip
    result = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=180)
    assert result.returncode != 0, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("qattn_replay: ")]
    assert lines == ["qattn_replay: bag_player exited with code 1 (its last messages above): stopping the graph"]


def test_sigint_then_sigterm_after_5_s_keeps_the_replay_report(checkpoint, tmp_path) -> None:
    """Stopped as launch stops a graph (SIGINT; SIGTERM 5 s later; SIGKILL 5 s after): the report is written."""
    from qattn_ros.data.synthetic import RoadGenerator
    from qattn_ros.data.writers import write_udacity_bag

    bag = write_udacity_bag(tmp_path / "HMB_1.bag", RoadGenerator(160, 320, seed=11), 400)
    out = tmp_path / "out"
    launched = load(LAUNCH / "replay_eval.launch.py", {"bag": str(bag), "checkpoint": checkpoint, "out": str(out),
                                                       "device": "cpu", "steps": "10", "group": "8"})  # fmt: skip
    env = _environment()
    processes = [spawn(node.command(tmp_path, entry_points()), env=env) for node in launched.nodes]
    try:
        end = time.monotonic() + 240
        rows = out / "node" / "attention.jsonl"
        while len(read_results(rows)) < 8 and time.monotonic() < end:
            assert all(p.poll() is None for p in processes), "\n".join(output(p)[-2000:] for p in processes)
            time.sleep(0.5)
        assert rows.is_file(), "a first group evaluated"
    finally:
        stop_as_launch_does(processes)
    logs = "\n".join(f"--- {n.name}\n{output(p)[-2500:]}" for n, p in zip(launched.nodes, processes))
    assert (out / "replay.json").is_file() and (out / "table.md").is_file(), logs
    counts = json.loads((out / "replay.json").read_text())["counts"]
    assert counts["evaluated"] >= 8 and counts["evaluated"] == len(read_results(rows)), logs
