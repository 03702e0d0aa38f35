"""How every node of this package takes SIGINT and SIGTERM: the first one stops it, the rest wait for the stop.

A supervisor, a terminal's Ctrl-C to a process group and `ros2 launch` (SIGINT, then SIGTERM 5 s
later) can each deliver a stop signal, so a node often gets two or more. The first raises
KeyboardInterrupt in the main thread, wherever it is (importing torch, configuring, spinning);
every later one is only counted, so the stop it started (the steering node's zero-speed command,
the evaluator's report) runs to its end, and no second KeyboardInterrupt cuts it short with a
traceback. A node that reaches its own end calls `stopping()` first: a signal that arrives while it
finishes (writing a report) does not cut that short either.

A process supervised by another (`ros2 launch`, a container's entry point) must also stop when its
parent goes: launch killed by SIGTERM or SIGKILL forwards nothing, and the node would drive on alone.
`parent_gone` tells, from the parent recorded when this module was first imported.

Imports nothing heavy: the console entry points (qattn_ros.ros.entry_points) install it before
torch and rclpy load, counting only while they load (`count_only`): a KeyboardInterrupt raised inside
torch's import either aborts the process from its native code or is swallowed by a library; the stop
is raised once the import is done (`raise_from_now`).
"""

from __future__ import annotations

import os
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
INTERRUPTED_BEFORE_START = 130  # the shell's status for Ctrl-C: stopped before it was up, nothing to stop

_received: list[int] = []  # every stop signal, in order
_stopping = False
_counting_only = False
_parent = os.getppid()  # the process that started this one (the entry points import this module first)


def _on_stop_signal(signum: int, frame) -> None:
    _received.append(signum)
    if len(_received) == 1 and not _stopping and not _counting_only:
        raise KeyboardInterrupt


def count_only() -> None:
    """Until `raise_from_now`, signals are counted, never raised (while code that cannot take an exception runs)."""
    global _counting_only
    _counting_only = True


def raise_from_now() -> None:
    """The first stop signal raises again; one that came while only counting raises here, now."""
    global _counting_only
    _counting_only = False
    if _received and not _stopping:
        raise KeyboardInterrupt


def install() -> None:
    """Take SIGINT and SIGTERM (also when a shell started us with SIGINT ignored, as `cmd &` does)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_stop_signal)


def stopping() -> None:
    """From here on the process is finishing: signals are counted, never raised."""
    global _stopping
    _stopping = True


def ignore() -> None:
    """At the very end: Python restores the default handlers while it exits, and a late signal would then end the
    process by that signal instead of with the status it chose."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def received() -> list[str]:
    """The stop signals received so far, by name (for the log)."""
    return [signal.Signals(s).name for s in _received]


def parent_gone() -> bool:
    """Whether the process that started this one has ended (this one was handed to another parent)."""
    return os.getppid() != _parent
