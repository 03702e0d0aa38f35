"""The steering node's frame accounting and diagnostics level (qattn_ros.rules.node_status), without ROS."""

import threading

import pytest

from qattn_ros.rules.command_gate import Camera, Lifecycle
from qattn_ros.rules.node_status import (
    COUNTERS,
    ERROR,
    OK,
    STALE,
    WARN,
    FrameWindow,
    NewestFrame,
    status_of,
    window_values,
)


def test_a_swap_that_comes_in_the_middle_of_a_count_waits_for_it() -> None:
    """The diagnostics timer swaps the window while the worker is inside a count: the count lands in exactly one
    published window (swapped without the lock, it went into a window already published, and was lost).

    Decided by events, not by a timeout: the worker, preempted inside its count, goes on once the swap has either
    found the lock taken (and waits for it) or finished without it."""
    window = FrameWindow()
    published, started = [], []
    decided = threading.Event()

    class Watched:
        """The window's lock, saying when an acquire has to wait."""

        def __init__(self, lock) -> None:
            self.lock = lock

        def __enter__(self):
            if not self.lock.acquire(blocking=False):
                decided.set()
                self.lock.acquire()
            return self

        def __exit__(self, *_) -> None:
            self.lock.release()

    def swap() -> None:
        published.append(window.swap().counts["bad"])
        decided.set()

    class Interrupted(dict):
        """The worker's count, preempted between reading the old value and writing the new one."""

        def __getitem__(self, key):
            value = super().__getitem__(key)
            if key == "bad" and not started:
                started.append(threading.Thread(target=swap))
                started[0].start()
                assert decided.wait(timeout=60), "the swap neither waited for the lock nor finished"
            return value

    window._lock = Watched(window._lock)
    window._window.counts = Interrupted(window._window.counts)
    window.count("bad")
    started[0].join(timeout=60)
    published.append(window.swap().counts["bad"])
    assert published == [1, 0] and window.totals["bad"] == 1


def test_the_newest_frame_wins_and_a_replaced_one_counts_as_dropped() -> None:
    window = FrameWindow()
    slot = NewestFrame(window)
    slot.put("a")
    slot.put("b")
    assert slot.take() == "b"
    slot.put("c")
    assert slot.take() == "c"
    counts = window.swap().counts
    assert (counts["frames_in"], counts["dropped"]) == (3, 1)
    taken = []
    waiter = threading.Thread(target=lambda: taken.append(slot.take()))
    waiter.start()
    slot.close()
    waiter.join(timeout=10)
    assert taken == [None], "closing wakes a waiting worker"


def _counts(**values) -> dict:
    return {**dict.fromkeys(COUNTERS, 0), "frames_in": 5, **values}


@pytest.mark.parametrize(
    "state, camera, counts, note, refused, expected",
    [
        (Lifecycle.INACTIVE, Camera.SILENT, _counts(nonfinite=1), "x", True, (STALE, "inactive: not commanding")),
        (Lifecycle.ACTIVE, Camera.SILENT, _counts(nonfinite=1), "a", True, (ERROR, "camera refused: a")),
        (Lifecycle.ACTIVE, Camera.SILENT, _counts(nonfinite=1), "", False, (ERROR, "camera silent: vehicle stopped")),
        (
            Lifecycle.ACTIVE,
            Camera.PAUSED,
            _counts(nonfinite=1),
            "",
            False,
            (ERROR, "non-finite predictions: vehicle stopped"),
        ),
        (
            Lifecycle.ACTIVE,
            Camera.PAUSED,
            _counts(frames_in=0),
            "",
            False,
            (STALE, f"{Camera.PAUSED.value}: vehicle stopped"),
        ),
        (
            Lifecycle.ACTIVE,
            Camera.WAITING,
            _counts(frames_in=0),
            "",
            False,
            (WARN, "waiting for the first camera frame"),
        ),
        (  # frames come but none decodes (an unreadable encoding): the watchdog still waits, the level says why
            Lifecycle.ACTIVE,
            Camera.WAITING,
            _counts(bad=5),
            "unsupported encoding '32FC1'",
            True,
            (ERROR, "camera refused: unsupported encoding '32FC1'"),
        ),
        (Lifecycle.ACTIVE, Camera.LIVE, _counts(frames_in=0), "", False, (STALE, "no frames in this window")),
        (Lifecycle.ACTIVE, Camera.LIVE, _counts(dropped=2), "squashed", False, (WARN, "squashed")),
        (Lifecycle.ACTIVE, Camera.LIVE, _counts(dropped=2), "", False, (WARN, "bad or dropped frames in this window")),
        (Lifecycle.ACTIVE, Camera.LIVE, _counts(bad=1), "", False, (WARN, "bad or dropped frames in this window")),
        (Lifecycle.ACTIVE, Camera.LIVE, _counts(clamped=3), "", False, (OK, "ok")),
    ],
)
def test_the_diagnostics_level_says_the_worst_first(state, camera, counts, note, refused, expected) -> None:
    assert status_of(state, True, camera, counts, note, refused) == expected


def test_a_paused_node_says_so_and_the_values_carry_counts_rates_and_totals() -> None:
    assert status_of(Lifecycle.ACTIVE, False, Camera.LIVE, _counts()) == (OK, "ok, commands paused")
    window = FrameWindow()
    for latency in (10.0, 20.0, 30.0):
        window.count("frames_out", latency)
    window.count("dropped")
    values = window_values(window.swap(), window.totals, True, Camera.LIVE)
    assert values["frames_out"] == "3" and values["dropped"] == "1" and values["total_dropped"] == "1"
    assert values["latency_p50_ms"] == "20.00" and values["camera"] == "live" and values["enabled"] == "True"
