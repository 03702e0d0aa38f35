"""A recurrent steering model in the node, over real rclpy across processes: its state starts afresh where the
stamps say a new sequence begins, on activation and after a non-finite prediction."""

import math
import time

import numpy as np
import pytest
import torch
from checkpoints import overflowing_recurrent_checkpoint
from lifecycle_msgs.msg import Transition
from ros_harness import Harness, Lifecycle, raw_message, start_process, stop_process, until

from qattn_ros.core.preprocess import Preprocessing
from qattn_ros.inference.predictor import SteeringPredictor
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint
from qattn_ros.ros.messages import steering_value

NODE = "qattn_ros.ros.steering_node"


def _recurrent_checkpoint(folder) -> str:
    """A recurrent model whose state moves its output by ~5e-4 rad from frame to frame (far above float noise)."""
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="kim_canny", recurrent=True)).eval()
    model.target_std.fill_(2.0)
    with torch.no_grad():
        model.state_input.weight.mul_(20)
        model.cell.weight_hh.mul_(4)
        model.head[1].weight[:, -model.config.hidden_dim :] *= 20
    info = CheckpointInfo(model=model.config, preprocessing=Preprocessing(), steering_unit="wheel_rad",
                          positive_is_left=True)  # fmt: skip
    return str(save_checkpoint(folder / "rnn", model, info))


def _answer(harness: Harness, image, sec: int, nanosec: int) -> float:
    """The steering angle the node publishes for `image` stamped sec.nanosec."""
    msg = raw_message(image, "rgb8")
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    before = len(harness.received["steering_angle"])
    harness.raw.publish(msg)
    assert until(harness, lambda: len(harness.received["steering_angle"]) > before, 20), "no output"
    return steering_value(harness.received["steering_angle"][-1])


def _warm_up(harness: Harness, image, ready=lambda: True) -> None:
    """Frames until the node answers on steering_angle and `ready()` (its recurrent state moves on meanwhile)."""
    warmed = len(harness.received["steering_angle"])
    end = time.monotonic() + 30
    while (len(harness.received["steering_angle"]) == warmed or not ready()) and time.monotonic() < end:
        assert harness.send(raw_message(image, "rgb8"), wait_for=("attention/map",)) is not None
        harness.spin(0.3)


def test_twist_commands_and_a_recurrent_state_reset_when_stamps_jump(ros, tmp_path, frame) -> None:
    """cmd_vel_type twist publishes plain Twist. The recurrent state starts afresh on a stamp gap above
    max_frame_gap, a stamp going back and on activation; a repeated stamp (or stamp 0) continues it."""
    from geometry_msgs.msg import Twist

    harness, domain = ros
    checkpoint = _recurrent_checkpoint(tmp_path)
    twists = []
    harness.node.create_subscription(Twist, "plain_cmd_vel", twists.append, 10)
    offline = SteeringPredictor(checkpoint, "cpu")
    fresh, second = offline.predict(frame).wheel_angle, offline.predict(frame).wheel_angle
    assert abs(fresh - second) > 40 * 1e-5, "the state matters well above the tolerance"
    process = start_process(NODE, {"checkpoint": checkpoint, "cmd_vel_type": "twist", "reliability": "reliable",
                                   "device": "cpu", "max_frame_gap": 0.1}, domain,
                            remaps={"cmd_vel": "plain_cmd_vel"})  # fmt: skip
    node = Lifecycle(harness)

    def answer(sec: int, nanosec: int) -> float:
        return _answer(harness, frame, sec, nanosec)

    try:
        _warm_up(harness, frame, lambda: bool(twists))
        values = [answer(5000, 0), answer(5000, 50_000_000), answer(5000, 300_000_000)]  # hours later; +50 ms; +250 ms
        values += [answer(4000, 0), answer(4000, 0)]  # 1000 s back; the same stamp again
        assert node.transition(Transition.TRANSITION_DEACTIVATE) and node.transition(Transition.TRANSITION_ACTIVATE)
        values += [answer(4000, 50_000_000)]  # +50 ms, but after a re-activation
        values += [answer(0, 0), answer(0, 0)]  # a camera that does not stamp
        expected = [fresh, second, fresh, fresh, second, fresh, fresh, second]
        assert values == pytest.approx(expected, abs=1e-5)
        harness.spin(0.3)
        assert twists[-1].linear.x == pytest.approx(2.0), "plain Twist commands"
    finally:
        stop_process(process)


def test_a_recurrent_model_starts_afresh_after_a_non_finite_prediction(ros, tmp_path, frame) -> None:
    """The node stops on a non-finite prediction and forgets the state it came with: the next frame of the same
    stamp sequence is answered as a first frame, not from the state of the broken one."""
    harness, domain = ros
    trigger = np.zeros_like(frame)  # its prediction overflows to inf
    checkpoint = overflowing_recurrent_checkpoint(tmp_path, frame, trigger)
    offline = SteeringPredictor(checkpoint, "cpu")
    fresh, second = offline.predict(frame).wheel_angle, offline.predict(frame).wheel_angle
    assert math.isinf(offline.predict(trigger).wheel_angle)
    assert abs(second - fresh) > 1e-4 * abs(fresh), "the state matters well above float noise"
    process = start_process(NODE, {"checkpoint": checkpoint, "reliability": "reliable", "device": "cpu"}, domain)
    try:
        _warm_up(harness, frame)
        values = [_answer(harness, image, 7000, k * 50_000_000) for k, image in enumerate((frame, frame, trigger))]
        values.append(_answer(harness, frame, 7000, 150_000_000))  # +50 ms: the same sequence
        assert values[:2] == pytest.approx([fresh, second], rel=1e-5) and math.isinf(values[2])
        assert values[3] == pytest.approx(fresh, rel=1e-5), "the state of the broken frame was kept"
    finally:
        log = stop_process(process)
    assert "non-finite prediction: vehicle stopped" in log
