"""The steering node's frame accounting without ROS: the newest-frame slot, per-window counters, the level.

The subscription callback, the inference worker and the diagnostics timer run on different
threads; `FrameWindow` counts under its own lock and hands the window over whole, so no count
lands in a window already published. `NewestFrame` keeps only the newest frame for the worker
(a frame replaced before it was taken counts as dropped). `status_of` decides the level and
the one-line message.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .command_gate import Camera, Lifecycle

COUNTERS = ("frames_in", "frames_out", "dropped", "bad", "nonfinite", "clamped")
OK, WARN, ERROR, STALE = 0, 1, 2, 3  # diagnostic_msgs/DiagnosticStatus levels


@dataclass
class Window:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=10_000))
    start: float = field(default_factory=time.monotonic)


class FrameWindow:
    """Counters of the current diagnostics window and totals since start, safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = Window()
        self.totals = dict.fromkeys(COUNTERS, 0)

    def count(self, key: str, latency_ms: float | None = None) -> None:
        with self._lock:
            self._window.counts[key] += 1
            if latency_ms is not None:
                self._window.latency_ms.append(latency_ms)

    def swap(self) -> Window:
        """The window so far (added to the totals); counting goes on in a fresh one."""
        with self._lock:
            window, self._window = self._window, Window()
            for key, value in window.counts.items():
                self.totals[key] += value
        return window


class NewestFrame:
    """A one-frame slot between the subscription callback and the inference worker: the newest wins."""

    def __init__(self, window: FrameWindow) -> None:
        self.window = window
        self._wake = threading.Condition()
        self._pending = None
        self._open = True

    def put(self, item) -> None:
        self.window.count("frames_in")
        with self._wake:
            if self._pending is not None:
                self.window.count("dropped")
            self._pending = item
            self._wake.notify()

    def take(self):
        """The newest item, waiting for one; None once closed."""
        with self._wake:
            while self._pending is None and self._open:
                self._wake.wait(timeout=0.5)
            item, self._pending = self._pending, None
            return item if self._open else None

    def close(self) -> None:
        with self._wake:
            self._open = False
            self._wake.notify_all()


def status_of(state: Lifecycle, enabled: bool, camera: Camera, counts: dict[str, int], camera_note: str = "",
              camera_refused: bool = False) -> tuple[int, str]:  # fmt: skip
    """(level, message) of one window; `camera_note`: a camera-geometry mismatch, said every window (ERROR
    when the camera is refused, WARN when accepted)."""
    if state is not Lifecycle.ACTIVE:
        return STALE, f"{state.value}: not commanding"
    if camera_note and camera_refused:
        return ERROR, f"camera refused: {camera_note}"
    if camera is Camera.SILENT:
        return ERROR, "camera silent: vehicle stopped"
    if counts["nonfinite"]:
        return ERROR, "non-finite predictions: vehicle stopped"
    if camera is Camera.PAUSED:
        return STALE, f"{camera.value}: vehicle stopped"
    if camera is Camera.WAITING:
        return WARN, camera.value
    if counts["frames_in"] == 0:
        return STALE, "no frames in this window"
    if camera_note:
        return WARN, camera_note
    if counts["bad"] or counts["dropped"]:
        return WARN, "bad or dropped frames in this window"
    return OK, "ok" if enabled else "ok, commands paused"


def window_values(window: Window, totals: dict[str, int], enabled: bool, camera: Camera) -> dict[str, str]:
    """The key-values of one window: its counts, rates and latency percentiles, and the totals."""
    counts = window.counts
    seconds = max(time.monotonic() - window.start, 1e-6)
    latency = np.array(window.latency_ms) if window.latency_ms else np.zeros(1)
    values = {
        **counts,
        "input_hz": f"{counts['frames_in'] / seconds:.2f}",
        "output_hz": f"{counts['frames_out'] / seconds:.2f}",
        "latency_p50_ms": f"{np.percentile(latency, 50):.2f}",
        "latency_p99_ms": f"{np.percentile(latency, 99):.2f}",
        "enabled": enabled,
        "camera": camera.name.lower(),
        **{f"total_{k}": v for k, v in totals.items()},
    }
    return {key: str(value) for key, value in values.items()}
