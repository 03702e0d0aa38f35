"""The steering node's safety rules on their own (qattn_ros.command_gate), property-based where it fits."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from qattn_ros.command_gate import STOP, Camera, CommandGate, Lifecycle, StampSequence, Watchdog, drive_command

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
LIMITS = st.floats(min_value=0.01, max_value=1.5)
SPEEDS = st.floats(min_value=0.0, max_value=40.0)


@given(wheel=ANY_FLOAT, steering=ANY_FLOAT, speed=SPEEDS, limit=LIMITS)
def test_a_command_is_finite_within_the_limit_and_stops_on_a_non_finite_prediction(wheel, steering, speed, limit):
    command = drive_command(wheel, steering, speed, limit)
    assert math.isfinite(command.angle) and math.isfinite(command.speed)
    assert -limit <= command.angle <= limit
    finite = math.isfinite(wheel) and math.isfinite(steering)
    assert command.finite is finite
    if not finite:  # NaN or ±inf in either: zero speed, zero angle
        assert (command.speed, command.angle, command.clamped) == (0.0, 0.0, False)
    else:
        assert command.speed == speed
        assert command.clamped is (abs(wheel) > limit)
        assert command.angle == (wheel if abs(wheel) <= limit else math.copysign(limit, wheel))


@pytest.mark.parametrize("wheel", [math.inf, -math.inf, math.nan])
def test_infinite_and_nan_predictions_stop(wheel) -> None:
    """Checking only isnan would let +inf through clamped to the limit at cruise speed."""
    assert drive_command(wheel, 0.1, 2.0, 0.6) == drive_command(0.1, wheel, 2.0, 0.6)
    assert drive_command(wheel, 0.1, 2.0, 0.6).speed == 0.0


@pytest.mark.parametrize("wheel, expected", [(-3.0, -0.3), (3.0, 0.3), (-0.31, -0.3), (0.2, 0.2)])
def test_both_limits_clamp(wheel, expected) -> None:
    command = drive_command(wheel, wheel, 2.0, 0.3)
    assert command.angle == pytest.approx(expected) and command.clamped is (wheel != expected)


def test_the_stop_is_zero_speed_and_angle() -> None:
    assert (STOP.speed, STOP.angle) == (0.0, 0.0)


STAMPS = st.integers(min_value=0, max_value=2**62)


@given(gap_s=st.floats(min_value=0.01, max_value=3600.0), stamps=st.lists(STAMPS, min_size=1, max_size=30))
def test_a_new_sequence_starts_exactly_on_the_first_frame_a_step_back_or_a_gap_above_max(gap_s, stamps) -> None:
    sequence = StampSequence(gap_s)
    previous = None
    for stamp in stamps:
        expected = previous is None or stamp < previous or (stamp - previous) / 1e9 > gap_s
        assert sequence.starts_anew(stamp) is expected, (previous, stamp)
        previous = stamp
    sequence.restart()
    assert sequence.starts_anew(stamps[-1]), "after a restart (activation) the next frame starts anew"


def test_repeated_and_zero_stamps_continue_the_sequence() -> None:
    sequence = StampSequence(1.0)
    assert sequence.starts_anew(0)
    assert not sequence.starts_anew(0), "a camera that does not stamp: one sequence"
    assert not sequence.starts_anew(0)
    assert sequence.starts_anew(5 * 10**9), "from 0 to 5 s: a gap"
    assert not sequence.starts_anew(5 * 10**9), "the same stamp again"
    assert not sequence.starts_anew(6 * 10**9), "exactly max_frame_gap: still the same sequence"
    assert sequence.starts_anew(6 * 10**9 - 1), "one nanosecond back"


TIMEOUTS = st.floats(min_value=0.05, max_value=10.0)


@given(timeout=TIMEOUTS, start=st.floats(min_value=0, max_value=1e6), after=st.floats(min_value=0, max_value=30))
def test_the_watchdog_stops_exactly_past_camera_timeout(timeout, start, after) -> None:
    dog = Watchdog(timeout)
    dog.restart(start)
    dog.frame(start, None)
    stop, _ = dog.check(start + after, None)
    assert stop is ((start + after) - start > timeout)


def test_the_watchdog_at_its_boundary() -> None:
    """Stops just past camera_timeout, not at twice it: a doubled timeout keeps driving blind."""
    dog = Watchdog(0.5)
    dog.restart(100.0)
    dog.frame(100.0, None)
    assert dog.check(100.5, None) == (False, None)
    assert dog.check(100.51, None) == (True, Camera.SILENT)
    assert dog.check(100.75, None) == (True, None), "said once, stopped every tick"


def test_before_the_first_frame_the_watchdog_waits_and_stops_without_crying_error() -> None:
    dog = Watchdog(0.5)
    dog.restart(0.0)
    assert dog.check(0.4, None) == (False, None)
    assert dog.check(0.6, None) == (True, Camera.WAITING)
    assert dog.check(5.0, 123) == (True, None), "waiting whatever the clock does, said once"
    assert dog.frame(5.1, None) is Camera.WAITING
    assert dog.check(5.2, None) == (False, None)


def test_a_camera_that_stops_with_the_sim_clock_is_a_pause_and_one_that_stops_alone_is_silent() -> None:
    dog = Watchdog(0.5)
    dog.restart(0.0)
    dog.frame(1.0, 7_000)  # sim time 7 µs when the frame came
    assert dog.check(2.0, 7_000) == (True, Camera.PAUSED), "the replay ended: clock and camera stopped together"
    assert dog.check(2.1, 7_000) == (True, None)
    assert dog.check(2.2, 8_000) == (True, Camera.SILENT), "time goes on without frames: the camera died"
    assert dog.frame(2.3, 8_000) is Camera.SILENT
    assert dog.check(2.4, 8_000) == (False, None)
    dog.frame(3.0, None)
    assert dog.check(4.0, None) == (True, Camera.SILENT), "no sim time: silence is silence"


class GateMachine(RuleBasedStateMachine):
    """Any sequence of transitions, enable calls and frames keeps the gate's promises."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = CommandGate(0.5, 1.0)
        self.enabled = True  # what the last ~/enable said
        self.now = 0.0
        self.in_flight: list[int] = []  # epochs of frames taken and not yet published

    @precondition(lambda self: self.gate.state is Lifecycle.UNCONFIGURED)
    @rule()
    def configure(self) -> None:
        self.gate.configure()

    @precondition(lambda self: self.gate.state is Lifecycle.INACTIVE)
    @rule()
    def activate(self) -> None:
        self.gate.activate(self.now)
        assert self.gate.sequence.starts_anew(123), "a recurrent model starts afresh on activation"
        assert self.gate.watchdog.state is Camera.WAITING

    @precondition(lambda self: self.gate.state is Lifecycle.ACTIVE)
    @rule()
    def deactivate(self) -> None:
        assert self.gate.deactivate()
        assert not any(self.gate.admits(epoch) for epoch in self.in_flight), "nothing after the stop"

    @precondition(lambda self: self.gate.state is Lifecycle.INACTIVE)
    @rule()
    def cleanup(self) -> None:
        self.gate.cleanup()

    @rule(enabled=st.booleans())
    def enable(self, enabled: bool) -> None:
        self.gate.set_enabled(enabled)
        self.enabled = enabled

    @rule()
    def take_frame(self) -> None:
        self.in_flight.append(self.gate.epoch)

    @precondition(lambda self: self.in_flight)
    @rule()
    def publish_oldest(self) -> None:
        epoch = self.in_flight.pop(0)
        assert self.gate.admits(epoch) is (self.gate.state is Lifecycle.ACTIVE and epoch == self.gate.epoch)

    @rule(seconds=st.floats(min_value=0, max_value=2))
    def tick(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def commands_only_while_active_and_enabled(self) -> None:
        assert self.gate.commanding is (self.gate.state is Lifecycle.ACTIVE and self.enabled)

    @invariant()
    def a_pause_survives_every_transition(self) -> None:
        assert self.gate.enabled is self.enabled


TestGateMachine = GateMachine.TestCase


def test_finalize_from_any_state_says_whether_it_was_commanding() -> None:
    for steps, was in (((), False), (("configure",), False), (("configure", "activate"), True)):
        gate = CommandGate(0.5, 1.0)
        for step in steps:
            getattr(gate, step)(*((0.0,) if step == "activate" else ()))
        assert gate.finalize() is was and gate.state is Lifecycle.FINALIZED and not gate.commanding
