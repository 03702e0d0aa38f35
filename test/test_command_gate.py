"""The steering node's safety rules on their own (qattn_ros.rules.command_gate), property-based where it fits."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from qattn_ros.rules.command_gate import (
    STOP,
    Camera,
    Command,
    CommandGate,
    Lifecycle,
    StampSequence,
    Watchdog,
    drive_command,
)

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


@pytest.mark.parametrize(
    "wheel, steering, speed, limit, expected",
    [
        (0.1, 0.5, 2.0, 0.3, Command(2.0, 0.1, finite=True, clamped=False)),
        (0.3, 0.5, 2.0, 0.3, Command(2.0, 0.3, finite=True, clamped=False)),  # exactly at the limit: kept
        (-0.3000001, 0.5, 2.0, 0.3, Command(2.0, -0.3, finite=True, clamped=True)),
        (0.7, -0.7, 0.0, 0.6, Command(0.0, 0.6, finite=True, clamped=True)),
        (0.1, math.nan, 2.0, 0.3, Command(0.0, 0.0, finite=False, clamped=False)),  # the raw output decides too
        (0.0, 0.0, 0.0, 0.3, STOP),  # the node's stop: standing, wheels straight, not a broken prediction
    ],
)
def test_commands_by_hand(wheel, steering, speed, limit, expected) -> None:
    assert drive_command(wheel, steering, speed, limit) == expected


def test_a_new_sequence_starts_on_the_first_frame_a_step_back_or_a_gap_above_max_in_nanoseconds() -> None:
    """max_frame_gap 0.1 s = 100,000,000 ns: a gap of exactly that continues, one nanosecond more starts anew."""
    sequence = StampSequence(0.1)
    stamps = [  # (stamp ns, starts anew)
        (1_000_000_000, True),  # the first frame
        (1_050_000_000, False),  # +50 ms
        (1_150_000_000, False),  # +100 ms: exactly the gap
        (1_250_000_001, True),  # +100 ms + 1 ns
        (1_250_000_001, False),  # the same stamp
        (1_250_000_000, True),  # 1 ns back
        (2**62, True),  # ~146 years later
        (2**62 + 100_000_000, False),
    ]
    assert [sequence.starts_anew(stamp) for stamp, _ in stamps] == [anew for _, anew in stamps]
    sequence.restart()
    assert sequence.starts_anew(2**62 + 100_000_000), "after a restart (activation) the next frame starts anew"


def test_repeated_and_zero_stamps_continue_the_sequence() -> None:
    sequence = StampSequence(1.0)
    assert sequence.starts_anew(0)
    assert not sequence.starts_anew(0), "a camera that does not stamp: one sequence"
    assert not sequence.starts_anew(0)
    assert sequence.starts_anew(5 * 10**9), "from 0 to 5 s: a gap"
    assert not sequence.starts_anew(5 * 10**9), "the same stamp again"
    assert not sequence.starts_anew(6 * 10**9), "exactly max_frame_gap: still the same sequence"
    assert sequence.starts_anew(6 * 10**9 - 1), "one nanosecond back"


@pytest.mark.parametrize(
    "timeout, tick, first_stop",
    [
        (0.5, 0.05, 11),  # the defaults: camera_timeout 0.5 s, the node's 50 ms tick; 500 ms is not past it
        (0.5, 0.0625, 9),
        (0.25, 0.0625, 5),
        (2.0, 0.25, 9),
        (0.05, 0.0125, 5),  # the node ticks at camera_timeout / 4 below 0.2 s
    ],
)
def test_the_watchdog_stops_at_the_first_tick_past_camera_timeout(timeout, tick, first_stop) -> None:
    """A steady clock ticking every `tick` s after the last frame: the first stop comes on tick `first_stop`, is
    said once, and repeats on every tick after it."""
    dog = Watchdog(timeout)
    dog.restart(1000.0)
    dog.frame(1000.0, None)
    answers = [dog.check(1000.0 + k * tick, None) for k in range(1, first_stop + 3)]
    assert answers == [(False, None)] * (first_stop - 1) + [(True, Camera.SILENT)] + [(True, None)] * 2


def test_the_watchdog_at_its_boundary() -> None:
    """Stops just past camera_timeout, not at twice it: a doubled timeout keeps driving blind."""
    dog = Watchdog(0.5)
    dog.restart(100.0)
    dog.frame(100.0, None)
    assert dog.check(100.5, None) == (False, None)
    assert dog.check(100.51, None) == (True, Camera.SILENT)
    assert dog.check(100.75, None) == (True, None), "said once, stopped every tick"


@pytest.mark.parametrize(
    "clock_at_frame, stamp, clock_at_check, expected",
    [
        (7_000, 7_000, 7_000, Camera.PAUSED),  # nothing moved since the frame
        (7_000, 9_000, 9_000, Camera.PAUSED),  # lockstep: the clock reaches the frame's stamp after the answer
        (7_000, 9_000, 9_001, Camera.SILENT),  # past the frame's stamp: time goes on without frames
        (9_000, 7_000, 8_000, Camera.PAUSED),  # a clock ahead of the stamp: the clock counts
        (9_000, 7_000, 9_001, Camera.SILENT),
    ],
)
def test_on_sim_time_the_camera_pauses_until_the_clock_passes_the_later_of_clock_and_stamp(
    clock_at_frame, stamp, clock_at_check, expected
) -> None:
    dog = Watchdog(0.5)
    dog.restart(0.0)
    dog.frame(1.0, clock_at_frame, stamp)
    assert dog.check(2.0, clock_at_check) == (True, expected)


def test_each_activation_says_again_that_it_waits_for_the_first_frame() -> None:
    dog = Watchdog(0.5)
    dog.restart(0.0)
    assert dog.check(0.6, None) == (True, Camera.WAITING)
    dog.restart(1.0)  # deactivated and activated again, still no frame
    assert dog.check(1.6, None) == (True, Camera.WAITING), "news for this activation"


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
        self.state = "unconfigured"  # the lifecycle as the transitions made it, kept here
        self.enabled = True  # what the last ~/enable said
        self.now = 0.0
        self.in_flight: list[dict] = []  # frames taken, not yet published: the epoch and whether they may leave

    @precondition(lambda self: self.state == "unconfigured")
    @rule()
    def configure(self) -> None:
        self.gate.configure()
        self.state = "inactive"

    @precondition(lambda self: self.state == "inactive")
    @rule()
    def activate(self) -> None:
        self.gate.activate(self.now)
        self.state = "active"
        assert self.gate.sequence.starts_anew(123), "a recurrent model starts afresh on activation"
        assert self.gate.watchdog.state is Camera.WAITING

    @precondition(lambda self: self.state == "active")
    @rule()
    def deactivate(self) -> None:
        assert self.gate.deactivate()
        self.state = "inactive"
        for frame in self.in_flight:
            frame["may_leave"] = False  # taken under an activation that has ended

    @precondition(lambda self: self.state == "inactive")
    @rule()
    def cleanup(self) -> None:
        self.gate.cleanup()
        self.state = "unconfigured"

    @rule(enabled=st.booleans())
    def enable(self, enabled: bool) -> None:
        self.gate.set_enabled(enabled)
        self.enabled = enabled

    @rule()
    def take_frame(self) -> None:
        self.in_flight.append({"epoch": self.gate.epoch, "may_leave": self.state == "active"})

    @precondition(lambda self: self.in_flight)
    @rule()
    def publish_oldest(self) -> None:
        frame = self.in_flight.pop(0)
        assert self.gate.admits(frame["epoch"]) is frame["may_leave"]

    @rule(seconds=st.floats(min_value=0, max_value=2))
    def tick(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def the_lifecycle_is_the_transitions(self) -> None:
        assert self.gate.state.value == self.state

    @invariant()
    def commands_only_while_active_and_enabled(self) -> None:
        assert self.gate.commanding is (self.state == "active" and self.enabled)

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
