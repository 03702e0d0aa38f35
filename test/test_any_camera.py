"""Any camera driver and any way of stopping, over real processes: cameras that use none of this package's code
(nor its environment) reach the steering node, and stop signals end it cleanly with its zero-speed command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from checkpoints import random_checkpoint
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from processes import output, spawn
from ros_harness import ROOT

from benchmarks.foreign_cameras import users_shell
from qattn_ros.ros.dds_domain import claim_domain_id
from qattn_ros.ros.graph import ros_args

# A camera driver as users have them: plain rclpy, its own QoS, nothing of this package
PLAIN_CAMERA = """
import sys, time
import numpy as np, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
qos = {"sensor_data": qos_profile_sensor_data,
       "reliable_depth_10": QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
       "best_effort_depth_5": QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)}[sys.argv[1]]
count = int(sys.argv[2])
rclpy.init()
node = rclpy.create_node("plain_camera")
publisher = node.create_publisher(Image, "image", qos)
end = time.monotonic() + 120
while publisher.get_subscription_count() == 0 and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.1)
time.sleep(2.0)  # the node looks at its publishers' QoS every second
pixels = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8).tobytes()
for i in range(count):
    message = Image(height=480, width=640, encoding="rgb8", step=640 * 3, data=pixels)
    message.header.stamp = node.get_clock().now().to_msg()
    message.header.frame_id = "camera"
    publisher.publish(message)
    time.sleep(0.05)
print("sent", count, flush=True)
"""
FRAMES = 100


def _users_shell(domain: int) -> dict[str, str]:
    """The environment of a user's terminal: none of the transport settings this test process has made."""
    return users_shell(domain, "default")


def _steering_node(checkpoint: str, domain: int, **params) -> subprocess.Popen:
    """As the console executable `steering_node` (what ros2 launch starts), in its own process group."""
    command = [sys.executable, "-m", "qattn_ros.ros.entry_points", "steering_node",
               *ros_args({"checkpoint": checkpoint, "device": "cpu", **params})]  # fmt: skip
    return spawn(command, env=_users_shell(domain), start_new_session=True)


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    domain = claim_domain_id()
    rclpy.init(domain_id=domain)
    node = rclpy.create_node("any_camera_test")
    seen = {"cmd_vel": [], "diagnostics": []}
    node.create_subscription(TwistStamped, "cmd_vel", seen["cmd_vel"].append, 50)
    node.create_subscription(DiagnosticArray, "/diagnostics", seen["diagnostics"].append, 10)
    yield node, seen, domain, random_checkpoint(tmp_path_factory.mktemp("ckpt"))
    node.destroy_node()
    rclpy.shutdown()


def _spin_until(node, condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    return condition()


def _frames_in(seen) -> int:
    """The node's count of frames its subscription took, from its last diagnostics message."""
    for array in reversed(seen["diagnostics"]):
        for status in array.status:
            values = {kv.key: kv.value for kv in status.values}
            if "total_frames_in" in values:
                return int(values["total_frames_in"])
    return -1


def _next_frames_in(node, seen) -> int:
    before = len(seen["diagnostics"])
    assert _spin_until(node, lambda: len(seen["diagnostics"]) > before, timeout=30), "no diagnostics"
    return _frames_in(seen)


def _plain_camera(qos: str, count: int, domain: int, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PLAIN_CAMERA, qos, str(count)], env=_users_shell(domain),
                            stdout=stdout, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _stop(process: subprocess.Popen, *signals_sent: signal.Signals, gap: float = 0.05) -> str:
    """Signals to the process's whole group, as a terminal or a supervisor sends them; its output once it ends."""
    for sig in signals_sent:
        os.killpg(process.pid, sig)
        time.sleep(gap)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return output(process)


@pytest.mark.parametrize("qos", ["sensor_data", "reliable_depth_10", "best_effort_depth_5"])
def test_a_plain_640x480_camera_reaches_the_node(ros, qos) -> None:
    node, seen, domain, checkpoint = ros
    seen["diagnostics"].clear()
    steering = _steering_node(checkpoint, domain)
    camera = _plain_camera(qos, FRAMES, domain, stdout=subprocess.PIPE)
    try:
        _spin_until(node, lambda: camera.poll() is not None, timeout=240)
        # counted, not slept: until the node's total stops moving over two diagnostics windows
        counts: list[int] = []
        while len(counts) < 3 or counts[-1] != counts[-3]:
            counts.append(_next_frames_in(node, seen))
    finally:
        log = _stop(steering, signal.SIGINT)
        camera.kill()
    assert camera.stdout.read().strip() == f"sent {FRAMES}"
    assert counts[-1] >= 0.9 * FRAMES, f"{qos}: {counts[-1]} of {FRAMES} frames reached the node\n{log[-3000:]}"
    assert counts[-1] <= FRAMES


def test_a_camera_no_qos_can_match_is_named_in_one_warning(ros) -> None:
    node, seen, domain, checkpoint = ros
    steering = _steering_node(checkpoint, domain, reliability="reliable")
    camera = _plain_camera("sensor_data", 40, domain)
    try:
        _spin_until(node, lambda: "no frames from" in output(steering), timeout=120)
    finally:
        camera.kill()
        log = _stop(steering, signal.SIGINT)
    warnings = [line for line in log.splitlines() if "no frames from" in line]
    assert len(warnings) == 1, log
    assert "offers best_effort" in warnings[0] and "requests reliable" in warnings[0], warnings[0]
    assert "set reliability:=auto" in warnings[0]


def _driving(node, seen, steering: subprocess.Popen) -> bool:
    """Until the node commands a non-zero speed (frames from the plain camera)."""
    return _spin_until(node, lambda: any(m.twist.linear.x > 0 for m in seen["cmd_vel"]) or steering.poll() is not None,
                       timeout=120) and steering.poll() is None  # fmt: skip


@pytest.mark.parametrize("signals_sent", [
    (signal.SIGINT,), (signal.SIGINT, signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGTERM)])  # fmt: skip
def test_stop_signals_while_driving_end_with_the_zero_speed_command(ros, signals_sent) -> None:
    node, seen, domain, checkpoint = ros
    seen["cmd_vel"].clear()
    steering = _steering_node(checkpoint, domain)
    camera = _plain_camera("reliable_depth_10", 2000, domain)
    try:
        assert _driving(node, seen, steering), output(steering)
        sent = len(seen["cmd_vel"])
        log = _stop(steering, *signals_sent)
        _spin_until(node, lambda: any(m.twist.linear.x == 0 for m in seen["cmd_vel"][sent:]), timeout=5)
    finally:
        camera.kill()
    assert steering.returncode == 0, log
    assert "Traceback" not in log and "[ERROR]" not in log.split("stopping on")[-1], log
    assert log.count("shutting down: zero-speed command sent") == 1, log
    assert any(m.twist.linear.x == 0 for m in seen["cmd_vel"][sent:]), "the zero-speed command on the wire"


def test_with_no_checkpoint_the_shipped_default_drives_and_says_which(ros) -> None:
    """The console executable with no checkpoint parameter: the shipped default model, its card's line in the log."""
    node, seen, domain, _ = ros
    seen["cmd_vel"].clear()
    command = [sys.executable, "-m", "qattn_ros.ros.entry_points", "steering_node", *ros_args({"device": "cpu"})]
    steering = spawn(command, env=_users_shell(domain), start_new_session=True)
    camera = _plain_camera("reliable_depth_10", 2000, domain)
    try:
        drove = _driving(node, seen, steering)
    finally:
        log = _stop(steering, signal.SIGINT)
        camera.kill()
    assert drove, log[-3000:]
    listing = json.loads((ROOT / "models" / "manifest.json").read_text())
    default = listing["default"]
    assert f"shipped model {default}: {listing['models'][default]['summary']}" in log, log[-3000:]


@pytest.mark.parametrize("after", [0.3, 0.5, 0.7])
def test_a_stop_while_importing_ends_in_one_line(ros, after) -> None:
    """Wherever in torch's and rclpy's import the signals land (inside native code a raised KeyboardInterrupt
    aborted the process or was swallowed by a library), the start ends with 130 and one line."""
    _, _, domain, checkpoint = ros
    steering = _steering_node(checkpoint, domain)
    time.sleep(after)  # the interpreter is up; torch and rclpy take a second or more to import
    log = _stop(steering, signal.SIGINT, signal.SIGINT, signal.SIGTERM)
    assert "DDS transport" not in log, "still importing when the signals came"
    assert steering.returncode == 130 and log.strip() == "qattn_steering: stopped by SIGINT while starting", log


@pytest.mark.slow
def test_a_stop_at_any_moment_of_start_up_ends_in_one_line_or_an_orderly_stop(ros) -> None:
    """Every 0.1 s of the first 3 s (SIGINT on odd tenths, SIGTERM on even ones): before the node is up, status 130
    and its last line names the signal; once up, the orderly stop with its zero-speed command. Never a traceback,
    never killed by a signal."""
    _, _, domain, checkpoint = ros
    for tenth in range(1, 31):
        sig = signal.SIGINT if tenth % 2 else signal.SIGTERM
        steering = _steering_node(checkpoint, domain)
        time.sleep(tenth / 10)
        log = _stop(steering, sig)
        where = f"{sig.name} after {tenth / 10:.1f} s:\n{log[-3000:]}"
        assert "Traceback" not in log and steering.returncode in (0, 130), where
        if steering.returncode == 130:
            assert log.strip().splitlines()[-1] == f"qattn_steering: stopped by {sig.name} while starting", where
            assert log.count("while starting") == 1, where
        else:
            assert "zero-speed command sent" in log, where


PARENT = """
import subprocess, sys
child = subprocess.Popen(sys.argv[1:])
print("child", child.pid, flush=True)
child.wait()
"""


def _gone(pid: int) -> bool:
    """No such process, or one that has ended and waits to be reaped (its new parent may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL])
def test_the_car_stops_when_the_process_that_started_the_node_is_killed(ros, kill) -> None:
    """launch killed alone (`docker stop` sends SIGTERM to it; launch forwards nothing): the node, left driving
    under another parent, sends its zero-speed command and exits; seen at this independent subscriber."""
    node, seen, domain, checkpoint = ros
    seen["cmd_vel"].clear()
    command = [sys.executable, "-c", PARENT, sys.executable, "-m", "qattn_ros.ros.entry_points", "steering_node",
               *ros_args({"checkpoint": checkpoint, "device": "cpu"})]  # fmt: skip
    parent = spawn(command, env=_users_shell(domain), start_new_session=True)
    camera = _plain_camera("reliable_depth_10", 4000, domain)
    pid = None
    try:
        assert _driving(node, seen, parent), output(parent)
        pid = int(next(line.split()[1] for line in output(parent).splitlines() if line.startswith("child ")))
        sent = len(seen["cmd_vel"])
        killed = time.monotonic()
        os.kill(parent.pid, kill)
        stopped = _spin_until(node, lambda: any(m.twist.linear.x == 0 for m in seen["cmd_vel"][sent:]), timeout=5)
        latency = time.monotonic() - killed
        end = time.monotonic() + 5
        while not _gone(pid) and time.monotonic() < end:
            time.sleep(0.05)
        gone = _gone(pid)
    finally:
        camera.kill()
        parent.wait(timeout=30)
        if pid is not None and not _gone(pid):
            os.kill(pid, signal.SIGKILL)
    log = output(parent)
    assert stopped, f"no zero-speed command within 5 s of the parent's {kill.name}\n{log[-3000:]}"
    assert latency < 1.0, f"the zero-speed command came {latency:.2f} s after the parent's {kill.name}"
    assert gone, f"the node still runs 5 s after its parent's {kill.name}\n{log[-3000:]}"
    assert "the process that started this node has ended" in log and "Traceback" not in log, log[-3000:]


def test_a_stop_while_configuring_ends_cleanly(ros) -> None:
    _, _, domain, checkpoint = ros
    steering = _steering_node(checkpoint, domain)
    end = time.monotonic() + 120
    while "DDS transport" not in output(steering) and time.monotonic() < end:
        time.sleep(0.01)
    log = _stop(steering, signal.SIGINT, signal.SIGTERM, gap=0.01)
    assert "Traceback" not in log and steering.returncode in (0, 130), log
    if steering.returncode == 0:  # the node was made: its stop went out
        assert "shutting down: zero-speed command sent" in log, log


def test_a_lifecycle_shutdown_ends_the_process(ros) -> None:
    node, seen, domain, checkpoint = ros
    steering = _steering_node(checkpoint, domain)
    change = node.create_client(ChangeState, "/qattn_steering/change_state")
    try:
        assert change.wait_for_service(timeout_sec=120), output(steering)
        future = change.call_async(ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVE_SHUTDOWN)))
        assert _spin_until(node, future.done, timeout=30) and future.result().success
        steering.wait(timeout=30)
    finally:
        log = _stop(steering, signal.SIGINT) if steering.poll() is None else output(steering)
        node.destroy_client(change)
    assert steering.returncode == 0 and "shutting down: zero-speed command sent" in log and "Traceback" not in log


@pytest.fixture
def fresh_signals(monkeypatch):
    """qattn_ros.ros.signals as a process finds it at start (nothing received, not stopping), its handlers installed
    in this process for the test and the previous ones put back after it."""
    from qattn_ros.ros import signals

    monkeypatch.setattr(signals, "_received", [])
    monkeypatch.setattr(signals, "_stopping", False)
    monkeypatch.setattr(signals, "_counting_only", False)
    kept = {sig: signal.getsignal(sig) for sig in signals.STOP_SIGNALS}
    signals.install()
    yield signals
    for sig, handler in kept.items():
        signal.signal(sig, handler)


def _raises(sig: signal.Signals) -> bool:
    """Whether a signal to this process raised KeyboardInterrupt (its handler runs before raise_signal returns)."""
    try:
        signal.raise_signal(sig)
    except KeyboardInterrupt:
        return True
    return False


def test_only_the_first_stop_signal_raises_the_later_ones_are_counted(fresh_signals) -> None:
    """In this process, not timed against a child's stop: the first signal raises, the second and third (launch's
    SIGTERM after its SIGINT, a second Ctrl-C) only count, so nothing cuts the stop the first one started short."""
    assert [_raises(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGINT)] == [True, False, False]
    assert fresh_signals.received() == ["SIGINT", "SIGTERM", "SIGINT"]


def test_no_stop_signal_raises_once_the_process_is_finishing(fresh_signals) -> None:
    fresh_signals.stopping()
    assert [_raises(s) for s in (signal.SIGTERM, signal.SIGINT)] == [False, False]
    assert fresh_signals.received() == ["SIGTERM", "SIGINT"]


def test_a_signal_while_only_counting_raises_once_raising_is_allowed_again(fresh_signals) -> None:
    fresh_signals.count_only()
    assert [_raises(s) for s in (signal.SIGINT, signal.SIGTERM)] == [False, False]
    with pytest.raises(KeyboardInterrupt):
        fresh_signals.raise_from_now()
    assert not _raises(signal.SIGINT), "the stop is under way: counted"
    assert fresh_signals.received() == ["SIGINT", "SIGTERM", "SIGINT"]
