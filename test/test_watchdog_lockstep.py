"""The end of a lockstep drive is a pause, not a dead camera: the node takes each frame while the simulator's clock
still reads the step before it, and the clock moves to the frame's stamp only once the command is in."""

from qattn_ros.rules.command_gate import Camera, Watchdog

S = 1_000_000_000  # ns


def test_the_clock_reaching_the_last_frames_stamp_is_still_a_pause() -> None:
    dog = Watchdog(0.5)
    dog.restart(0.0)
    # frame k stamped 10.05 s taken while /clock reads 10.00 s; the simulator then moves /clock to 10.05 s and ends
    assert dog.frame(1.0, 10 * S, stamp_ns=10 * S + 50_000_000) is Camera.WAITING
    assert dog.check(2.0, 10 * S + 50_000_000) == (True, Camera.PAUSED), "clock at the frame: the track ended"
    assert dog.check(2.1, 10 * S + 100_000_000) == (True, Camera.SILENT), "one tick past the frame: silent"


def test_a_frame_stamped_before_the_clock_counts_from_the_clock() -> None:
    """A replayed frame may carry a stamp older than /clock: the clock at that moment is where the camera stood."""
    dog = Watchdog(0.5)
    dog.restart(0.0)
    dog.frame(1.0, 20 * S, stamp_ns=19 * S)
    assert dog.check(2.0, 20 * S) == (True, Camera.PAUSED)
    assert dog.check(2.1, 20 * S + 1) == (True, Camera.SILENT)
