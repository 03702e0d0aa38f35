"""The closed-loop simulator: headless physics and metrics, and the simulator node driven over real rclpy."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from checkpoints import random_checkpoint
from geometry_msgs.msg import TwistStamped
from processes import finish, spawn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState

from qattn_ros.core.errors import ConfigError
from qattn_ros.ros import sim_drive
from qattn_ros.ros.dds_domain import claim_domain_id
from qattn_ros.ros.graph import ros_args
from qattn_ros.ros.messages import steering_value
from qattn_ros.sim.metrics import DriveLog
from qattn_ros.sim.track import HELD_OUT_SEEDS, TRAINING_SEEDS, Track, generate_track
from qattn_ros.sim.world import RoadSim, SimConfig

SPEED, WHEELBASE = 15.0, 2.85
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


# -- headless ------------------------------------------------------------------------------------
def test_tracks_are_seeded_curvy_and_held_out() -> None:
    assert not set(TRAINING_SEEDS) & set(HELD_OUT_SEEDS)
    track = generate_track(HELD_OUT_SEEDS[0], 2000)
    again = generate_track(HELD_OUT_SEEDS[0], 2000)
    assert np.array_equal(track.lengths, again.lengths) and np.array_equal(track.curvatures, again.curvatures)
    assert track.length >= 2000 and (track.curvatures > 0).any() and (track.curvatures < 0).any()
    assert np.abs(track.curvatures).max() <= 1 / 50
    assert any(a * b < 0 for a, b in zip(track.curvatures, track.curvatures[1:], strict=False)), "an S-bend"


def test_bicycle_on_a_circle_matches_the_closed_form() -> None:
    """On a circle of curvature k, the steady-state wheel angle atan(L k) keeps the car on the centre line."""
    k = 1 / 60
    sim = RoadSim(Track(np.array([600.0]), np.array([k])), SimConfig(steering_delay=0.0))
    sim.theta = 0.0
    for _ in range(400):
        sim.step(SPEED, math.atan(WHEELBASE * k))
    assert abs(sim.n) < 1e-6 and abs(sim.theta) < 1e-6 and not sim.log.interventions
    assert sim.s == pytest.approx(400 * SPEED / 20, rel=1e-9)
    x, y, yaw = sim.track.pose(sim.s, 0.0, 0.0)  # on the circle of radius 60 centred at (0, 60)
    assert math.hypot(x, y - 60) == pytest.approx(60, abs=0.05) and yaw == pytest.approx(sim.s * k, abs=0.01)


def test_the_driven_path_in_odom_stays_on_the_road() -> None:
    """Poses (for TF, RViz and the track plot) are the Frenet state mapped onto the centre line."""
    sim = RoadSim(generate_track(HELD_OUT_SEEDS[0], 2000))
    while not sim.done:
        sim.step(SPEED, sim.pursuit_steering())
    _, cx, cy, _ = sim.track.line
    path = np.column_stack([sim.log.x, sim.log.y])[::10]
    nearest = np.sqrt(((path[:, None, 0] - cx) ** 2 + (path[:, None, 1] - cy) ** 2).min(axis=1))
    assert np.abs(nearest - np.abs(sim.log.offset[::10])).max() < 0.2


def test_limits_delay_and_interventions() -> None:
    sim = RoadSim(Track(np.array([500.0]), np.array([0.0])), SimConfig(steering_delay=0.1, max_steering=0.5))
    command = sim.step(SPEED, 2.0)
    assert command.clamped and command.steering == 0.5 and sim.counts["clamped"] == 1
    sim.step(SPEED, 0.5)
    assert sim.log.steering == [0.0, 0.0], "0.1 s = 2 steps at 20 Hz: the wheels have not turned yet"
    sim.step(SPEED, 0.5)
    assert sim.log.steering[-1] == 0.5
    command = sim.step(math.nan, 0.1)
    assert command.invalid and command.speed == 0.0 and sim.counts["invalid"] == 1
    while not sim.log.interventions:
        sim.step(SPEED, 0.5)
    assert sim.n == 0.0 and sim.theta == 0.0, "put back on the centre line"


def test_autonomy_is_nvidias_definition() -> None:
    log = DriveLog(dt=0.05)
    for i in range(1200):  # 60 s
        log.add(0.05 * (i + 1), 0.75 * (i + 1), 0.1, 0.0, 0.0, 0.0, 0.0)
    log.interventions = [(10.0, 7.5), (30.0, 22.5)]
    assert log.summary()["autonomy"] == pytest.approx(1 - 2 * 6 / 60)
    assert log.summary()["km"] == pytest.approx(0.9)


def test_bad_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_steering=3"):
        SimConfig(max_steering=3)


# -- the node, over real rclpy --------------------------------------------------------------------
class Driver:
    """A test-side driver: answers each camera frame with a cmd_vel carrying its stamp (`behind`: the stamp of
    the frame before, as a driver that always answers one frame late)."""

    def __init__(self, node, policy, behind: bool = False) -> None:
        self.node, self.policy, self.answered, self.behind, self.previous = node, policy, 0, behind, None
        self.pub = node.create_publisher(TwistStamped, "cmd_vel", RELIABLE)
        node.create_subscription(JointState, "ground_truth/steering_angle", self._on_truth, RELIABLE)

    def _on_truth(self, msg: JointState) -> None:
        decision = self.policy(self.answered, steering_value(msg))
        if decision is None:  # silent
            return
        speed, angle = decision
        command = TwistStamped()
        command.header, self.previous = (self.previous, msg.header) if self.behind else (msg.header, None)
        if command.header is None:
            return
        command.twist.linear.x = speed
        command.twist.angular.z = speed * math.tan(angle) / WHEELBASE if math.isfinite(angle) else angle
        self.pub.publish(command)
        self.answered += 1


@pytest.fixture(scope="module")
def ros():
    domain = claim_domain_id()
    rclpy.init(domain_id=domain)
    yield domain
    rclpy.shutdown()


def _drive(domain: int, policy, tmp_path, name: str, behind: bool = False, **params) -> tuple[dict, str]:
    """Run the simulator node in its own process with `policy` driving; (report summary, its output)."""
    node = rclpy.create_node(f"driver_{name}")
    Driver(node, policy, behind)
    # the driver needs a camera subscription for the simulator to start
    node.create_subscription(Image, "image", lambda m: None, RELIABLE)
    settings = {"track_seed": HELD_OUT_SEEDS[0], "length_km": 0.4, "report": str(tmp_path / name), **params}
    process = spawn([sys.executable, "-m", "qattn_ros.ros.simulator", *ros_args(settings)],
                    env={**os.environ, "ROS_DOMAIN_ID": str(domain)})  # fmt: skip
    end = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.01)
    ended_by_us = process.poll() is None
    if ended_by_us:  # a run that never ends fails the test, and leaves no simulator behind
        process.kill()
    log = finish(process, 30)
    node.destroy_node()
    assert not ended_by_us, f"the simulator did not end within 240 s:\n{log[-2000:]}"
    results = json.loads((tmp_path / name / "results.json").read_text())["drivers"]["node"]
    return results, log


@pytest.mark.slow
def test_pursuit_on_ground_truth_drives_a_curvy_held_out_road(ros, tmp_path) -> None:
    first, output = _drive(ros, lambda i, truth: (SPEED, truth), tmp_path, "pursuit")
    assert first["complete"] and first["km"] >= 0.4, output[-2000:]
    assert first["autonomy"] == 1.0 and first["interventions"] == 0 and first["max_abs_offset_m"] < 0.8
    assert first["command_timeouts"] == 0 and first["clamped"] == 0 and first["invalid"] == 0
    second, _ = _drive(ros, lambda i, truth: (SPEED, truth), tmp_path, "pursuit_again")
    a, b = ((tmp_path / n / "drive.csv").read_text() for n in ("pursuit", "pursuit_again"))
    assert a == b, "lockstep: the same seed gives the same trajectory"
    for name in ("table.md", "track.png", "offset.png"):
        assert (tmp_path / "pursuit" / name).stat().st_size > 0


def test_zero_steering_is_intervened_and_bad_commands_are_counted(ros, tmp_path) -> None:
    def policy(i: int, truth: float):
        if i in (5, 6):
            return SPEED, math.nan
        if i == 7:
            return SPEED, math.inf
        if i in (8, 9):
            return SPEED, 1.4  # beyond max_steering 0.6
        return SPEED, 0.0

    summary, output = _drive(ros, policy, tmp_path, "zero")
    assert summary["complete"] and summary["interventions"] >= 2 and summary["autonomy"] < 0.9, output[-2000:]
    assert summary["invalid"] == 3 and summary["clamped"] == 2


def test_silence_stops_the_car_and_says_so(ros, tmp_path) -> None:
    summary, output = _drive(ros, lambda i, truth: (SPEED, truth) if i < 20 else None, tmp_path, "silent",
                             duration=1.5, command_timeout=1.0)  # fmt: skip
    assert "no command for 1.0 s: car stopped" in output
    assert summary["command_timeouts"] == 1 and summary["stopped_steps"] == 10 and summary["steps"] == 30
    assert summary["km"] == pytest.approx(20 * SPEED / 20 / 1000, rel=0.05), "it moved while commanded, then not"


def test_a_driver_at_speed_zero_stalls_and_the_run_ends(ros, tmp_path) -> None:
    """Zero speed (a paused node, --speed 0, a clamped negative speed): no duration set, the run still ends."""
    summary, output = _drive(ros, lambda i, truth: (0.0, truth), tmp_path, "parked", stall_timeout=2.0)
    assert not summary["complete"] and summary["ended"].startswith("stalled: the car moved 0.00 m in 2.0 s"), output
    assert summary["steps"] == 40 and summary["km"] == 0.0 and "ended early: stalled" in output


def test_realtime_counts_late_commands_and_the_first_frame_is_no_timeout(ros, tmp_path) -> None:
    """Real time, a driver that always answers one frame late: every command it sends is late, the car drives on
    them, and the frame before its first answer is a stopped step, not a command timeout."""
    summary, output = _drive(ros, lambda i, truth: (SPEED, truth), tmp_path, "late", behind=True, mode="realtime",
                             duration=1.0)  # fmt: skip
    assert summary["complete"] and summary["steps"] == 20, output[-2000:]
    assert summary["command_timeouts"] == 0 and "car stopped" not in output
    assert summary["late_commands"] >= 1 and summary["late_commands"] + summary["stopped_steps"] == 20
    assert summary["km"] > 0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return random_checkpoint(tmp_path_factory.mktemp("ckpt"))


def _sim_graph(checkpoint: str, report, domain: int, camera_timeout: float | None) -> str:
    """The graph qattn_sim starts (its executables and parameters), until the simulator exits; its output."""
    argv = ["--checkpoint", checkpoint, "--km", "0.05", "--device", "cpu", "--report", str(report)]
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    if camera_timeout is None:
        return subprocess.run([sys.executable, "-m", "qattn_ros.ros.sim_drive", *argv], env=env, capture_output=True,
                              text=True, timeout=300).stderr  # fmt: skip
    nodes = sim_drive.graph(sim_drive.parse_args(argv))
    nodes[1][1]["camera_timeout"] = camera_timeout
    processes = [spawn([sys.executable, "-m", module, *ros_args(params)], env=env) for (_, module, _), params in nodes]
    try:
        processes[0].wait(timeout=300)
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
    return "\n".join(finish(process, 60) for process in processes)


def test_two_qattn_sim_runs_with_the_node_drive_the_same(checkpoint, tmp_path) -> None:
    """Lockstep with qattn_steering in the loop is deterministic: qattn_sim's own run and one where the node's
    watchdog fires at every pause longer than 0.05 s (its stops, stamped with the node's sim clock, must never
    pass for the answer to a frame) give byte-identical drives, and the car moves from the first step."""
    domain = claim_domain_id()
    log_a = _sim_graph(checkpoint, tmp_path / "a", domain, None)
    log_b = _sim_graph(checkpoint, tmp_path / "b", domain, camera_timeout=0.05)
    a, b = ((tmp_path / n / "drive.csv").read_text() for n in "ab")
    assert len(a.splitlines()) > 60, log_a[-3000:]
    assert a == b, log_b[-3000:]
    assert "[ERROR]" not in log_a and "Traceback" not in log_a, "a completed drive logs no error: " + log_a[-3000:]
    first = a.splitlines()[1].split(",")
    assert float(first[1]) == pytest.approx(0.75, rel=0.02), "15 m/s for 0.05 s: no stop taken for frame 1"
    summary = json.loads((tmp_path / "b" / "results.json").read_text())["drivers"]["node"]
    assert summary["complete"] and summary["stopped_steps"] == 0


@pytest.mark.slow
def test_qattn_sim_with_no_checkpoint_drives_the_shipped_default_round_1_km(tmp_path) -> None:
    """The shipped default on 1 km of held-out road 1000 at 15 m/s, through qattn_sim as typed: no intervention
    budget beyond 1 %, and the log says which model drove."""
    env = {**os.environ, "ROS_DOMAIN_ID": str(claim_domain_id())}
    done = subprocess.run([sys.executable, "-m", "qattn_ros.ros.sim_drive", "--km", "1", "--device", "cpu",
                           "--report", str(tmp_path / "sim")], env=env, capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "sim" / "results.json").read_text())["drivers"]["node"]
    assert summary["complete"] and summary["km"] >= 1.0, done.stderr[-3000:]
    assert summary["autonomy"] >= 0.99, summary
    assert "shipped model sim_roads:" in done.stderr + done.stdout
