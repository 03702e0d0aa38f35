"""What makes the steering node safe on a car, over real rclpy across processes: lifecycle, stops, limits."""

import math
import signal
import time

import pytest
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticStatus
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from processes import finish, spawn
from ros_harness import Harness, raw_message, start_process, stop_process
from std_srvs.srv import SetBool

from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint
from qattn_ros.preprocess import Preprocessing
from qattn_ros.ros.dds_domain import claim_domain_id
from qattn_ros.ros.messages import steering_value

NODE = "qattn_ros.ros.steering_node"


def _checkpoint(folder, name: str, nan: bool = False, target_mean: float = 0.0) -> str:
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="kim_canny")).eval()
    model.target_std.fill_(0.01)
    model.target_mean.fill_(target_mean)
    if nan:
        model.head[-1].bias.data.fill_(float("nan"))
    info = CheckpointInfo(model=model.config, preprocessing=Preprocessing(), steering_unit="wheel_rad",
                          positive_is_left=True)  # fmt: skip
    return str(save_checkpoint(folder / name, model, info))


@pytest.fixture(scope="module")
def ros():
    domain = claim_domain_id()
    rclpy.init(domain_id=domain)
    harness = Harness("safety", reliable=True)
    yield harness, domain
    harness.node.destroy_node()
    rclpy.shutdown()


@pytest.fixture(scope="module")
def frame():
    return RoadGenerator(120, 160, seed=6).frame(0).image


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    return {
        "ok": _checkpoint(folder, "ok"),
        "nan": _checkpoint(folder, "nan", nan=True),
        "hard_left": _checkpoint(folder, "left", target_mean=3.0),  # 3 rad: far beyond any steering limit
    }


def _call(harness: Harness, client, request, timeout: float = 10.0):
    assert client.wait_for_service(timeout_sec=timeout), client.srv_name
    future = client.call_async(request)
    end = time.monotonic() + timeout
    while not future.done() and time.monotonic() < end:
        rclpy.spin_once(harness.node, timeout_sec=0.05)
    return future.result()


def _stops_after(harness: Harness, index: int) -> list:
    return [m for m in harness.received["cmd_vel"][index:] if m.twist.linear.x == 0.0 and m.twist.angular.z == 0.0]


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"wheelbase": 0.0}, "parameter wheelbase must be a float in [0.1, 10.0]"),
        ({"overlay_alpha": 7.0}, "parameter overlay_alpha must be a float in [0.0, 1.0]"),
        ({"camera_timeout": -1.0}, "parameter camera_timeout must be a float in [0.05, 10.0]"),
        ({"colormap": "foo"}, "parameter colormap='foo': expected one of jet, inferno, turbo, viridis, hot"),
        ({"transport": "udp"}, "parameter transport='udp': expected one of raw, compressed"),
    ],
)
def test_bad_parameters_refuse_start_up_naming_the_parameter_and_its_range(checkpoints, params, needle) -> None:
    process = start_process(NODE, {"checkpoint": checkpoints["ok"], **params}, claim_domain_id())
    output = finish(process, 60)
    assert process.returncode == 1, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("qattn_steering: ") and needle in last, last
    assert "Traceback" not in output


def test_lifecycle_through_the_standard_services(ros, checkpoints, frame) -> None:
    harness, domain = ros
    change = harness.node.create_client(ChangeState, "/qattn_steering/change_state")
    get = harness.node.create_client(GetState, "/qattn_steering/get_state")

    def transition(transition_id: int) -> bool:
        return _call(harness, change, ChangeState.Request(transition=Transition(id=transition_id))).success

    def state() -> int:
        return _call(harness, get, GetState.Request()).current_state.id

    process = start_process(NODE, {"checkpoint": checkpoints["ok"], "autostart": False, "reliability": "reliable",
                                   "device": "cpu"}, domain)  # fmt: skip
    try:
        assert state() == State.PRIMARY_STATE_UNCONFIGURED
        assert harness.send(raw_message(frame, "rgb8"), timeout=3) is None, "unconfigured: no commands"
        assert transition(Transition.TRANSITION_CONFIGURE) and state() == State.PRIMARY_STATE_INACTIVE
        assert harness.send(raw_message(frame, "rgb8"), timeout=3) is None, "inactive: no commands"
        assert transition(Transition.TRANSITION_ACTIVATE) and state() == State.PRIMARY_STATE_ACTIVE
        assert harness.send(raw_message(frame, "rgb8")) is not None, "active: commands"
        before = len(harness.received["cmd_vel"])
        assert transition(Transition.TRANSITION_DEACTIVATE) and state() == State.PRIMARY_STATE_INACTIVE
        harness.spin(0.5)
        assert _stops_after(harness, before), "deactivate sends a zero-speed command"
        assert harness.send(raw_message(frame, "rgb8"), timeout=3) is None, "deactivated: no commands"
        diagnostics = harness.diagnostics()
        assert harness.received["/diagnostics"][-1].status[0].level == DiagnosticStatus.STALE and diagnostics
        assert transition(Transition.TRANSITION_CLEANUP) and state() == State.PRIMARY_STATE_UNCONFIGURED
        assert transition(Transition.TRANSITION_CONFIGURE) and transition(Transition.TRANSITION_ACTIVATE)
        assert harness.send(raw_message(frame, "rgb8")) is not None, "configured again after cleanup"
        assert transition(Transition.TRANSITION_ACTIVE_SHUTDOWN) and state() == State.PRIMARY_STATE_FINALIZED
    finally:
        log = stop_process(process)
    assert "deactivated: zero-speed command sent" in log


def test_camera_silence_stops_the_vehicle_and_frames_resume_it(ros, checkpoints, frame) -> None:
    harness, domain = ros
    timeout = 0.4
    process = start_process(NODE, {"checkpoint": checkpoints["ok"], "camera_timeout": timeout,
                                   "reliability": "reliable", "device": "cpu"}, domain)  # fmt: skip
    try:
        outputs = harness.send(raw_message(frame, "rgb8"))
        assert outputs["cmd_vel"][0].twist.linear.x == pytest.approx(2.0)
        last_drive = time.monotonic()
        before = len(harness.received["cmd_vel"])
        end = time.monotonic() + 3
        first_stop = None
        while time.monotonic() < end and first_stop is None:
            rclpy.spin_once(harness.node, timeout_sec=0.01)
            if _stops_after(harness, before):
                first_stop = time.monotonic()
        assert first_stop is not None, "no zero-speed command while the camera was silent"
        # within camera_timeout + one watchdog period (+ delivery and the frame's own processing time)
        assert first_stop - last_drive < timeout + 0.05 + 0.5
        harness.spin(0.5)
        assert len(_stops_after(harness, before)) > 3, "the stop is repeated while the camera stays silent"
        diagnostics = harness.diagnostics()
        assert harness.received["/diagnostics"][-1].status[0].level == DiagnosticStatus.ERROR and diagnostics
        outputs = harness.send(raw_message(frame, "rgb8"))
        assert outputs["cmd_vel"][0].twist.linear.x == pytest.approx(2.0), "frames again: driving again"
    finally:
        log = stop_process(process)
    assert "no camera frame for 0.4 s: vehicle stopped" in log and "camera frames again" in log


def test_sigint_sends_a_last_zero_speed_command(ros, checkpoints, frame) -> None:
    harness, domain = ros
    # started as a shell's background job (SIGINT inherited ignored): the node must still take Ctrl-C
    process = start_process(NODE, {"checkpoint": checkpoints["ok"], "reliability": "reliable", "device": "cpu",
                                   "camera_timeout": 10.0}, domain, background=True)  # fmt: skip
    assert harness.send(raw_message(frame, "rgb8")) is not None
    before = len(harness.received["cmd_vel"])
    process.send_signal(signal.SIGINT)
    end = time.monotonic() + 10
    while process.poll() is None and time.monotonic() < end:
        rclpy.spin_once(harness.node, timeout_sec=0.02)
    harness.spin(0.5)
    assert process.returncode == 0, stop_process(process)
    assert _stops_after(harness, before), "a zero-speed command on the way out"
    assert harness.received["cmd_vel"][-1].twist.linear.x == 0.0


def test_non_finite_predictions_stop_and_are_counted(ros, checkpoints, frame) -> None:
    harness, domain = ros
    process = start_process(NODE, {"checkpoint": checkpoints["nan"], "reliability": "reliable", "device": "cpu"},
                            domain)  # fmt: skip
    try:
        outputs = harness.send(raw_message(frame, "rgb8"))
        command = outputs["cmd_vel"][0].twist
        assert (command.linear.x, command.angular.z) == (0.0, 0.0)
        assert outputs["attention/map"] == [], "no attention from a broken prediction"
        assert int(harness.diagnostics()["total_nonfinite"]) >= 1
    finally:
        log = stop_process(process)
    assert "non-finite prediction: vehicle stopped" in log


def test_steering_is_clamped_and_commands_pause_and_resume(ros, checkpoints, frame) -> None:
    harness, domain = ros
    limit, speed, wheelbase = 0.3, 2.0, 2.85
    process = start_process(NODE, {"checkpoint": checkpoints["hard_left"], "max_steering_angle": limit,
                                   "reliability": "reliable", "device": "cpu"}, domain)  # fmt: skip
    enable = harness.node.create_client(SetBool, "/qattn_steering/enable")
    try:
        command = harness.send(raw_message(frame, "rgb8"))["cmd_vel"][0].twist
        assert command.angular.z == pytest.approx(speed * math.tan(limit) / wheelbase, abs=1e-5)
        assert int(harness.diagnostics()["total_clamped"]) >= 1
        before = len(harness.received["cmd_vel"])
        assert _call(harness, enable, SetBool.Request(data=False)).success
        harness.spin(0.3)
        assert _stops_after(harness, before), "pausing sends a zero-speed command"
        paused = harness.send(raw_message(frame, "rgb8"), timeout=3, wait_for=("attention/map",))
        assert paused is not None and paused["cmd_vel"] == [], "paused: attention still flows, no commands"
        assert _call(harness, enable, SetBool.Request(data=True)).success
        assert harness.send(raw_message(frame, "rgb8"))["cmd_vel"][0].twist.linear.x == pytest.approx(speed)
    finally:
        stop_process(process)


def test_twist_commands_and_a_recurrent_state_reset_when_stamps_jump(ros, tmp_path, frame) -> None:
    """cmd_vel_type twist publishes plain Twist; a stamp gap or a stamp going back starts the recurrent state afresh."""
    from geometry_msgs.msg import Twist

    from qattn_ros.predictor import SteeringPredictor

    harness, domain = ros
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="kim_canny", recurrent=True)).eval()
    model.target_std.fill_(0.05)
    info = CheckpointInfo(model=model.config, preprocessing=Preprocessing(), steering_unit="wheel_rad",
                          positive_is_left=True)  # fmt: skip
    checkpoint = str(save_checkpoint(tmp_path / "rnn", model, info))
    twists = []
    harness.node.create_subscription(Twist, "plain_cmd_vel", twists.append, 10)
    offline = SteeringPredictor(checkpoint, "cpu")
    first, second = offline.predict(frame).wheel_angle, offline.predict(frame).wheel_angle
    process = start_process(NODE, {"checkpoint": checkpoint, "cmd_vel_type": "twist", "reliability": "reliable",
                                   "device": "cpu"}, domain, remaps={"cmd_vel": "plain_cmd_vel"})  # fmt: skip
    try:
        # until the node answers on every topic read below (its state moves on meanwhile)
        warmed = len(harness.received["steering_angle"])
        end = time.monotonic() + 30
        while (len(harness.received["steering_angle"]) == warmed or not twists) and time.monotonic() < end:
            assert harness.send(raw_message(frame, "rgb8"), wait_for=("attention/map",)) is not None
            harness.spin(0.3)
        values = []
        for stamp in ((5000, 0), (5000, 50_000_000), (4000, 0)):  # a gap of hours, +50 ms, then 1000 s back
            msg = raw_message(frame, "rgb8")
            msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
            before = len(harness.received["steering_angle"])
            harness.raw.publish(msg)
            end = time.monotonic() + 20
            while len(harness.received["steering_angle"]) == before and time.monotonic() < end:
                rclpy.spin_once(harness.node, timeout_sec=0.02)
            assert len(harness.received["steering_angle"]) > before, "no output"
            values.append(steering_value(harness.received["steering_angle"][-1]))
        assert values == pytest.approx([first, second, first], abs=1e-5)
        harness.spin(0.3)
        assert twists[-1].linear.x == pytest.approx(2.0), "plain Twist commands"
    finally:
        stop_process(process)


def test_the_readme_venv_commands_exchange_frames(ros, checkpoints, tmp_path, frame) -> None:
    """The two commands the README gives for the venv, as written (paths swapped for test files), drive."""
    import os
    import shlex
    import sys
    from pathlib import Path

    import cv2
    from conftest import ROOT

    lines = [line for line in (ROOT / "README.md").read_text().splitlines()
             if line.startswith((".venv/bin/steering_node", ".venv/bin/camera_publisher"))]  # fmt: skip
    assert len(lines) == 2, lines
    for index in range(3):
        cv2.imwrite(str(tmp_path / f"{index}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    harness, domain = ros
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    processes = []
    before = len(harness.received["cmd_vel"])
    try:
        for line in lines:
            line = line.replace("runs/demo/quant_sign/best.safetensors", checkpoints["ok"])
            argv = shlex.split(line.replace("data_out/synthetic/test/IMG", str(tmp_path)))
            argv[0] = str(Path(sys.executable).parent / Path(argv[0]).name)  # this venv's entry point
            processes.append(spawn(argv, env=env))

        def driving() -> list:  # the watchdog's stops come first, until the camera's frames arrive
            return [m for m in harness.received["cmd_vel"][before:] if m.twist.linear.x > 0]

        end = time.monotonic() + 60
        while len(driving()) < 5 and time.monotonic() < end:
            rclpy.spin_once(harness.node, timeout_sec=0.05)
        assert len(driving()) >= 5, "commands from the README's camera frames"
    finally:
        for process in processes:
            stop_process(process)
