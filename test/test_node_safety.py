"""What makes the steering node safe on a car, over real rclpy across processes: lifecycle, stops, limits."""

import math
import signal
import time

import pytest
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticStatus
from lifecycle_msgs.msg import State, Transition, TransitionEvent
from processes import finish, spawn
from ros_harness import Harness, Lifecycle, raw_message, start_process, stop_process, until

from qattn_ros.core.preprocess import Preprocessing
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint
from qattn_ros.ros.dds_domain import claim_domain_id
from qattn_ros.rules.command_gate import Command, drive_message

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
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    return {
        "ok": _checkpoint(folder, "ok"),
        "nan": _checkpoint(folder, "nan", nan=True),
        "hard_left": _checkpoint(folder, "left", target_mean=3.0),  # 3 rad: far beyond any steering limit
    }


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
        ({"camera_width": 480, "camera_height": 640}, "a 480x640 (0.75:1) camera frame cropped to the trained"),
        ({"camera_width": 640, "camera_height": 480, "camera_fit": "squash"}, "squashed into the trained 160x80"),
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
    node = Lifecycle(harness)
    process = start_process(NODE, {"checkpoint": checkpoints["ok"], "autostart": False, "reliability": "reliable",
                                   "device": "cpu"}, domain)  # fmt: skip
    try:
        assert node.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert harness.send(raw_message(frame, "rgb8"), timeout=3) is None, "unconfigured: no commands"
        assert node.transition(Transition.TRANSITION_CONFIGURE) and node.state() == State.PRIMARY_STATE_INACTIVE
        assert harness.send(raw_message(frame, "rgb8"), timeout=3) is None, "inactive: no commands"
        assert node.transition(Transition.TRANSITION_ACTIVATE) and node.state() == State.PRIMARY_STATE_ACTIVE
        assert harness.send(raw_message(frame, "rgb8")) is not None, "active: commands"
        before = len(harness.received["cmd_vel"])
        assert node.transition(Transition.TRANSITION_DEACTIVATE) and node.state() == State.PRIMARY_STATE_INACTIVE
        harness.spin(0.5)
        assert _stops_after(harness, before), "deactivate sends a zero-speed command"
        assert harness.send(raw_message(frame, "rgb8"), timeout=3) is None, "deactivated: no commands"
        diagnostics = harness.diagnostics()
        assert harness.received["/diagnostics"][-1].status[0].level == DiagnosticStatus.STALE and diagnostics
        # a pause asked for while inactive holds through activation: attention flows, commands wait for ~/enable true
        assert "(node inactive: holds from activation)" in node.set_enabled(False)
        assert node.transition(Transition.TRANSITION_ACTIVATE)
        paused = harness.send(raw_message(frame, "rgb8"), timeout=5, wait_for=("attention/map",))
        assert paused is not None and paused["cmd_vel"] == [], "activation does not lift a pause"
        node.set_enabled(True)
        assert harness.send(raw_message(frame, "rgb8")) is not None, "enabled again: commands"
        assert node.transition(Transition.TRANSITION_DEACTIVATE)
        assert node.transition(Transition.TRANSITION_CLEANUP) and node.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert node.transition(Transition.TRANSITION_CONFIGURE) and node.transition(Transition.TRANSITION_ACTIVATE)
        assert harness.send(raw_message(frame, "rgb8")) is not None, "configured again after cleanup"
        assert node.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        assert process.wait(timeout=30) == 0, "finalized: the process ends (exit_when_finalized)"
    finally:
        log = stop_process(process)
    assert "deactivated: zero-speed command sent" in log
    assert "active: commanding from /image (commands paused by ~/enable false until ~/enable true)" in log


def _diagnostics_saying(harness: Harness, text: str, start: int = 0) -> list:
    return [d.status[0] for d in harness.received["/diagnostics"][start:] if text in d.status[0].message]


def test_camera_silence_stops_the_vehicle_and_frames_resume_it(ros, checkpoints, frame) -> None:
    harness, domain = ros
    timeout = 0.4
    process = start_process(NODE, {"checkpoint": checkpoints["ok"], "camera_timeout": timeout,
                                   "reliability": "reliable", "device": "cpu"}, domain)  # fmt: skip
    try:
        outputs = harness.send(raw_message(frame, "rgb8"))
        assert outputs["cmd_vel"][0].twist.linear.x == pytest.approx(2.0)
        before = len(harness.received["cmd_vel"])
        assert until(harness, lambda: _stops_after(harness, before), 10), "no stop while the camera was silent"
        harness.spin(0.5)
        assert len(_stops_after(harness, before)) > 3, "the stop is repeated while the camera stays silent"
        diagnostics = harness.diagnostics()
        assert harness.received["/diagnostics"][-1].status[0].level == DiagnosticStatus.ERROR and diagnostics
        outputs = harness.send(raw_message(frame, "rgb8"))
        assert outputs["cmd_vel"][0].twist.linear.x == pytest.approx(2.0), "frames again: driving again"
    finally:
        log = stop_process(process)
    assert "no camera frame for 0.4 s: vehicle stopped" in log and "camera frames again" in log


def test_no_camera_yet_is_a_warning_and_a_stop_not_an_error(ros, checkpoints) -> None:
    harness, domain = ros
    before, seen = len(harness.received["cmd_vel"]), len(harness.received["/diagnostics"])
    process = start_process(NODE, {"checkpoint": checkpoints["ok"], "camera_timeout": 0.2, "device": "cpu"}, domain)
    try:
        harness.wait_for_node()
        assert until(harness, lambda: _stops_after(harness, before)), "stopped while waiting for a camera"
        assert until(harness, lambda: _diagnostics_saying(harness, "waiting for the first camera frame", seen))
        assert _diagnostics_saying(harness, "waiting", seen)[-1].level == DiagnosticStatus.WARN
    finally:
        log = stop_process(process)
    assert "waiting for the first camera frame: zero-speed command sent" in log
    assert "no camera frame for" not in log and "[ERROR]" not in log, log


def test_a_camera_stopping_with_the_sim_clock_is_a_pause_and_alone_an_error(ros, checkpoints, frame) -> None:
    """The end of a replay: the bag player's camera and /clock stop together. A camera dying while time goes on
    is an error, on sim time as in real time."""
    from builtin_interfaces.msg import Time
    from rosgraph_msgs.msg import Clock

    harness, domain = ros
    clock = harness.node.create_publisher(Clock, "/clock", 10)
    process = start_process(NODE, {"checkpoint": checkpoints["ok"], "camera_timeout": 0.2, "use_sim_time": True,
                                   "reliability": "reliable", "device": "cpu"}, domain)  # fmt: skip
    try:
        harness.wait_for_node()
        until(harness, lambda: clock.get_subscription_count() > 0, 30)
        clock.publish(Clock(clock=Time(sec=500)))
        harness.spin(0.3)
        for _ in range(3):  # the replay: /clock, then the frame
            clock.publish(Clock(clock=Time(sec=500)))
            assert harness.send(raw_message(frame, "rgb8")) is not None
        seen = len(harness.received["/diagnostics"])
        assert until(harness, lambda: _diagnostics_saying(harness, "camera and clock stopped together", seen))
        assert _diagnostics_saying(harness, "camera and clock", seen)[-1].level == DiagnosticStatus.STALE
        seen = len(harness.received["/diagnostics"])
        last = max(m.header.stamp.sec for m in harness.received["steering_angle"])  # the last frame's stamp (s)
        clock.publish(Clock(clock=Time(sec=last, nanosec=123)))  # a lockstep simulator's clock reaches it
        harness.spin(0.5)
        assert not _diagnostics_saying(harness, "camera silent", seen), "the clock at the last frame: still paused"
        clock.publish(Clock(clock=Time(sec=last + 1)))  # time goes on past the frame, the camera does not
        assert until(harness, lambda: _diagnostics_saying(harness, "camera silent", seen))
        assert _diagnostics_saying(harness, "camera silent", seen)[-1].level == DiagnosticStatus.ERROR
    finally:
        log = stop_process(process)
        harness.node.destroy_publisher(clock)
    paused = log.index("camera and clock stopped together (replay or simulation paused or ended)")
    assert "[INFO]" in log[log.rindex("\n", 0, paused) : paused], "an INFO, not an ERROR"
    assert log.count("no camera frame for 0.2 s: vehicle stopped") == 1 and log.index("no camera frame") > paused


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_sends_a_last_zero_speed_command_and_the_finalized_transition(ros, checkpoints, frame, signum):
    harness, domain = ros
    events = []
    subscription = harness.node.create_subscription(
        TransitionEvent, "/qattn_steering/transition_event", lambda m: events.append(m), 10
    )
    # started as a shell's background job (SIGINT inherited ignored): the node must still take Ctrl-C
    process = start_process(NODE, {"checkpoint": checkpoints["ok"], "reliability": "reliable", "device": "cpu",
                                   "camera_timeout": 10.0}, domain, background=True)  # fmt: skip
    try:
        assert harness.send(raw_message(frame, "rgb8")) is not None
        before = len(harness.received["cmd_vel"])
        process.send_signal(signum)
        assert until(harness, lambda: process.poll() is not None, 30), "the node exits on the signal"
        finalized = lambda: [e for e in events if e.goal_state.id == State.PRIMARY_STATE_FINALIZED]  # noqa: E731
        assert until(harness, finalized, 10), [e.goal_state.label for e in events]
    finally:
        log = stop_process(process)
        harness.node.destroy_subscription(subscription)
    assert process.returncode == 0, log
    assert _stops_after(harness, before), "a zero-speed command on the way out"
    assert harness.received["cmd_vel"][-1].twist.linear.x == 0.0
    assert finalized()[-1].start_state.id == State.TRANSITION_STATE_SHUTTINGDOWN


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
    node = Lifecycle(harness)
    try:
        command = harness.send(raw_message(frame, "rgb8"))["cmd_vel"][0].twist
        assert command.angular.z == pytest.approx(speed * math.tan(limit) / wheelbase, abs=1e-5)
        assert int(harness.diagnostics()["total_clamped"]) >= 1
        before = len(harness.received["cmd_vel"])
        assert node.set_enabled(False) == "commands paused: zero-speed command sent"
        harness.spin(0.3)
        assert _stops_after(harness, before), "pausing sends a zero-speed command"
        paused = harness.send(raw_message(frame, "rgb8"), timeout=3, wait_for=("attention/map",))
        assert paused is not None and paused["cmd_vel"] == [], "paused: attention still flows, no commands"
        node.set_enabled(True)
        assert harness.send(raw_message(frame, "rgb8"))["cmd_vel"][0].twist.linear.x == pytest.approx(speed)
    finally:
        stop_process(process)


def test_the_ackermann_drive_command_carries_the_clamped_angle_and_the_speed() -> None:
    """ackermann_msgs is not on PyPI: the node's filling of AckermannDriveStamped, on a stand-in of its fields."""
    from types import SimpleNamespace

    from builtin_interfaces.msg import Time

    from qattn_ros.rules.command_gate import drive_command

    class AckermannDriveStamped:  # the fields of ackermann_msgs/AckermannDriveStamped
        def __init__(self) -> None:
            self.header = SimpleNamespace(stamp=Time(), frame_id="")
            self.drive = SimpleNamespace(steering_angle=0.0, steering_angle_velocity=0.0, speed=0.0,
                                         acceleration=0.0, jerk=0.0)  # fmt: skip

    stamp = Time(sec=12, nanosec=34)
    drive = drive_message(AckermannDriveStamped, stamp, "base_link", drive_command(-3.0, -3.0, 2.5, 0.3))
    assert (drive.header.stamp, drive.header.frame_id) == (stamp, "base_link")
    assert (drive.drive.steering_angle, drive.drive.speed) == (-0.3, 2.5), "clamped on the right, at cruise speed"
    stop = drive_message(AckermannDriveStamped, stamp, "base_link", drive_command(float("inf"), 0.1, 2.5, 0.3))
    assert (stop.drive.steering_angle, stop.drive.speed) == (0.0, 0.0)
    assert drive_message(AckermannDriveStamped, stamp, "b", Command(1.0, 0.1, True, False)).drive.speed == 1.0


def test_frames_faster_than_the_model_are_dropped_counted_and_warned(ros, checkpoints) -> None:
    harness, domain = ros
    big = RoadGenerator(480, 640, seed=6).frame(0).image  # slower through the model than it is to publish
    process = start_process(NODE, {"checkpoint": checkpoints["ok"], "reliability": "reliable", "device": "cpu",
                                   "diagnostics_period": 0.5}, domain)  # fmt: skip
    seen = len(harness.received["/diagnostics"])

    def dropped() -> list:
        windows = [d.status[0] for d in harness.received["/diagnostics"][seen:]]
        return [w for w in windows if int({kv.key: kv.value for kv in w.values}["dropped"]) > 0]

    try:
        assert harness.send(raw_message(big, "rgb8")) is not None
        end = time.monotonic() + 90
        while not dropped() and time.monotonic() < end:
            for _ in range(20):  # a burst, faster than the worker takes them
                harness.raw.publish(raw_message(big, "rgb8"))
            harness.spin(0.5)
    finally:
        stop_process(process)
    assert dropped(), "no frame was ever dropped"
    window = dropped()[0]
    assert window.level == DiagnosticStatus.WARN and window.message == "bad or dropped frames in this window"


def test_a_camera_the_checkpoint_cannot_map_is_refused_or_accepted_out_loud(ros, checkpoints) -> None:
    """A portrait camera on a 2:1 checkpoint: a stop and an ERROR; with accept_camera_mismatch, a WARN."""
    harness, domain = ros
    portrait = RoadGenerator(160, 120, seed=6).frame(0).image
    outputs = {}
    logs = {}
    for accept in (False, True):
        # camera_timeout 10 s: the watchdog's ERROR must not cover the mismatch's level on a slow machine
        process = start_process(NODE, {"checkpoint": checkpoints["ok"], "reliability": "reliable", "device": "cpu",
                                       "accept_camera_mismatch": accept, "camera_timeout": 10.0}, domain)  # fmt: skip
        try:
            first = len(harness.received["/diagnostics"])
            outputs[accept] = [harness.send(raw_message(portrait, "rgb8")) for _ in range(3)]
            harness.diagnostics()
            # the last window that saw a frame: a window may close between the frames and the next report
            seen = [d.status[0] for d in harness.received["/diagnostics"][first:]
                    if {kv.key: kv.value for kv in d.status[0].values}.get("frames_in", "0") != "0"]  # fmt: skip
            outputs[accept].append(seen[-1])
        finally:
            logs[accept] = stop_process(process)
    *refused, status = outputs[False]
    assert all(o["cmd_vel"][0].twist.linear.x == 0.0 and o["steering_angle"] == [] for o in refused)
    assert (
        status.level == DiagnosticStatus.ERROR and "camera refused: a 120x160 (0.75:1) camera frame" in status.message
    )
    assert logs[False].count("camera refused: ") == 1, "said once"
    *accepted, status = outputs[True]
    assert all(o["cmd_vel"][0].twist.linear.x == 2.0 for o in accepted), "accepted: driving"
    assert status.level == DiagnosticStatus.WARN and "keeps only" in status.message
    assert logs[True].count("camera geometry mismatch accepted (accept_camera_mismatch)") == 1


def test_the_readme_venv_commands_exchange_frames(ros, checkpoints, tmp_path, frame) -> None:
    """The two commands the README gives for the venv, as written (paths swapped for test files), drive."""
    import os
    import shlex
    import sys
    from pathlib import Path

    import cv2
    from conftest import ROOT

    pair = {}  # the first of each: the venv pair of "The ROS 2 node" (the ONNX section repeats the node's)
    for line in (ROOT / "README.md").read_text().splitlines():
        for program in (".venv/bin/qattn_steering", ".venv/bin/qattn_camera"):
            if line.startswith(program + " "):
                pair.setdefault(program, line)
    lines = list(pair.values())
    assert len(lines) == 2, lines
    for index in range(3):
        cv2.imwrite(str(tmp_path / f"{index}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    harness, domain = ros
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    processes = []
    before = len(harness.received["cmd_vel"])
    try:
        for line in lines:
            line = line.replace("runs/demo/binary_sign/best.safetensors", checkpoints["ok"])
            argv = shlex.split(line.replace("data_out/synthetic/test/IMG", str(tmp_path)))
            argv[0] = str(Path(sys.executable).parent / Path(argv[0]).name)  # this venv's entry point
            processes.append(spawn(argv, env=env))

        def driving() -> list:  # the watchdog's stops come first, until the camera's frames arrive
            return [m for m in harness.received["cmd_vel"][before:] if m.twist.linear.x > 0]

        end = time.monotonic() + 300  # a cap: the condition decides; a loaded machine starts processes slowly
        while len(driving()) < 5 and time.monotonic() < end:
            rclpy.spin_once(harness.node, timeout_sec=0.05)
        assert len(driving()) >= 5, "commands from the README's camera frames"
    finally:
        for process in processes:
            stop_process(process)
