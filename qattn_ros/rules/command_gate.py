"""The steering node's safety rules, without ROS: what it may command, when it must stop, and why.

As Autoware's vehicle_cmd_gate keeps its rules apart from its transport, `qattn_steering` is a
thin shell that feeds this gate its events (transitions, the `~/enable` service, frames,
watchdog ticks, predictions) under one lock and publishes what the gate answers. Each rule is
tested here on its own, exhaustively, without a ROS graph:

- lifecycle: commands only while active and enabled; a frame's outputs leave only if the
  activation it was taken under still holds, so nothing follows the deactivation stop.
- enable: `~/enable false` pauses until `~/enable true`, across deactivation and re-activation;
  it may be set in any state.
- recurrent state: a new sequence (reset) on the first frame of each activation, on a stamp that
  goes back and on a gap above `max_frame_gap`; a repeated stamp (the same one, or 0 from a camera
  that does not stamp) continues the sequence.
- command: a non-finite prediction commands zero speed and zero angle; otherwise the front-wheel
  angle clamped to ±`max_steering_angle` at the cruise speed (and the Ackermann drive message
  that carries it, filled here so that it is tested where ackermann_msgs is not installed).
- camera watchdog: no frame for more than `camera_timeout` s while commanding stops the vehicle,
  repeated until frames return. Why it is silent decides how loud it says so: no frame yet since
  activation is a WARN ("waiting for the first camera frame"); on sim time, a camera that stopped
  together with the clock (no tick since the last frame: the bag or simulator paused or ended) is
  an INFO; a camera that stopped while time goes on is an ERROR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class Lifecycle(Enum):
    UNCONFIGURED = "unconfigured"
    INACTIVE = "inactive"
    ACTIVE = "active"
    FINALIZED = "finalized"


class Camera(Enum):
    """What the watchdog knows about the camera; the value is what the node says about it."""

    WAITING = "waiting for the first camera frame"
    LIVE = "camera frames arriving"
    PAUSED = "camera and clock stopped together (replay or simulation paused or ended)"
    SILENT = "camera silent"


@dataclass(frozen=True)
class Command:
    speed: float  # m/s
    angle: float  # front-wheel angle, rad, positive left, within the limit
    finite: bool  # the prediction was finite (else: zero speed, zero angle)
    clamped: bool  # the prediction was beyond the limit


STOP = Command(0.0, 0.0, finite=True, clamped=False)


def drive_command(wheel_angle: float, steering: float, cruise_speed: float, limit: float) -> Command:
    """The command for a prediction (front-wheel angle and the raw output): clamp, or stop if not finite."""
    if not (math.isfinite(wheel_angle) and math.isfinite(steering)):
        return Command(0.0, 0.0, finite=False, clamped=False)
    angle = min(max(wheel_angle, -limit), limit)
    return Command(float(cruise_speed), angle, finite=True, clamped=angle != wheel_angle)


def drive_message(kind: type, stamp, frame_id: str, command: Command):
    """An ackermann_msgs/AckermannDriveStamped (`kind`, passed in: not every install has it) for a command:
    the front-wheel angle (rad, positive left) and the speed (m/s)."""
    drive = kind()
    drive.header.stamp, drive.header.frame_id = stamp, frame_id
    drive.drive.steering_angle, drive.drive.speed = float(command.angle), float(command.speed)
    return drive


@dataclass
class StampSequence:
    """Whether a frame starts a new sequence for a recurrent model (whose state must then be reset)."""

    max_gap_s: float
    last_ns: int | None = None

    def restart(self) -> None:
        """The next frame starts anew (activation: a state from before it would mislead)."""
        self.last_ns = None

    def starts_anew(self, stamp_ns: int) -> bool:
        last, self.last_ns = self.last_ns, stamp_ns
        return last is None or stamp_ns < last or stamp_ns - last > self.max_gap_s * 1e9


@dataclass
class Watchdog:
    """Camera silence, on a steady clock (`now`, s) and optionally the ROS clock on sim time (`clock_ns`)."""

    timeout_s: float
    state: Camera = Camera.WAITING
    last_frame: float = 0.0
    clock_at_frame: int | None = None
    reported: Camera | None = None  # the silent state the node was last told of

    def restart(self, now: float) -> None:
        self.state, self.last_frame, self.clock_at_frame, self.reported = Camera.WAITING, now, None, None

    def frame(self, now: float, clock_ns: int | None, stamp_ns: int = 0) -> Camera:
        """A frame stamped `stamp_ns` was processed; returns the state before it (the node says when frames return).

        On sim time the clock may still read the previous step while a frame is processed (a lockstep simulator
        moves it to the frame's stamp once the command is in): the camera counts as paused while the clock has
        not moved past the later of the two."""
        before, self.state, self.reported = self.state, Camera.LIVE, None
        self.last_frame, self.clock_at_frame = now, None if clock_ns is None else max(clock_ns, stamp_ns)
        return before

    def silent(self, now: float) -> bool:
        return now - self.last_frame > self.timeout_s

    def check(self, now: float, clock_ns: int | None) -> tuple[bool, Camera | None]:
        """(stop the vehicle now, the silent state to report if it is news)."""
        if not self.silent(now):
            return False, None
        if self.state is not Camera.WAITING:  # (no frame since activation: still waiting)
            paused = clock_ns is not None and self.clock_at_frame is not None and clock_ns <= self.clock_at_frame
            self.state = Camera.PAUSED if paused else Camera.SILENT
        news = self.state if self.state is not self.reported else None
        self.reported = self.state
        return True, news


class CommandGate:
    """Lifecycle, enable and activation epochs; the watchdog and the stamp sequence it restarts."""

    def __init__(self, camera_timeout: float, max_frame_gap: float) -> None:
        self.state = Lifecycle.UNCONFIGURED
        self.enabled = True
        self.epoch = 0  # activations so far: a frame taken under an earlier one is not published
        self.watchdog = Watchdog(camera_timeout)
        self.sequence = StampSequence(max_frame_gap)

    @property
    def commanding(self) -> bool:
        return self.state is Lifecycle.ACTIVE and self.enabled

    def configure(self) -> None:
        self.state = Lifecycle.INACTIVE

    def activate(self, now: float) -> None:
        """Start commanding (unless paused) with a fresh watchdog and a fresh recurrent sequence."""
        self.state = Lifecycle.ACTIVE
        self.epoch += 1
        self.watchdog.restart(now)
        self.sequence.restart()

    def deactivate(self) -> bool:
        """Stop commanding; True if it was (the node then says so)."""
        was = self.state is Lifecycle.ACTIVE
        if was:
            self.state = Lifecycle.INACTIVE
        return was

    def cleanup(self) -> None:
        self.state = Lifecycle.UNCONFIGURED

    def finalize(self) -> bool:
        """Shut down from any state; True if it was commanding before."""
        was = self.state is Lifecycle.ACTIVE
        self.state = Lifecycle.FINALIZED
        return was

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled

    def admits(self, epoch: int) -> bool:
        """May outputs of a frame taken under activation `epoch` leave now?"""
        return self.state is Lifecycle.ACTIVE and epoch == self.epoch
