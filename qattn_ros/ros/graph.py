"""Start a graph of nodes as processes (what a launch file does, for machines without `launch`).

The rules are the launch files' (launch_actions.py applies the same ones there): any node that
dies ends the graph, non-zero, with one line saying which node and how; the main node's normal
exit ends it with status 0; a stop is SIGINT to every node, SIGTERM 5 s later, SIGKILL 5 s after
that (launch's escalation, so what survives it here survives it under `ros2 launch`).
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from . import signals

# (executable, module, node name): the steering node as every graph starts it
STEERING = ("qattn_steering", "qattn_ros.ros.steering_node", "qattn_steering")
SIGTERM_AFTER = 5.0  # s from SIGINT: launch's sigterm_timeout
SIGKILL_AFTER = 5.0  # s from SIGTERM: launch's sigkill_timeout


@dataclass(frozen=True)
class ExitVerdict:
    """What a node's exit means for its graph."""

    reason: str | None  # why the graph ends (one line); None: the graph goes on
    failed: bool  # the graph ends with a non-zero status


def exit_verdict(node: str, returncode: int, main: bool, done: str = "") -> ExitVerdict:
    """A node of a running graph exited with `returncode`: a failure ends the graph, as does the main node's
    normal end (`done` says what it finished); another node's normal end leaves the graph running."""
    if returncode != 0:
        try:
            how = f"was killed by {signal.Signals(-returncode).name}" if returncode < 0 else ""
        except ValueError:
            how = ""
        how = how or f"exited with code {returncode}"
        return ExitVerdict(f"{node} {how} (its last messages above): stopping the graph", failed=True)
    if main:
        return ExitVerdict(done or f"{node} finished", failed=False)
    return ExitVerdict(None, failed=False)


def ros_args(params: dict) -> list[str]:
    """`--ros-args -p name:=value ...` for a parameter dict (booleans lower case, '' quoted; a string rcl would read
    as a YAML mapping or list, such as a data source {kind: ...}, single-quoted so that it stays a string)."""
    command = ["--ros-args"]
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if isinstance(value, str) and text.lstrip()[:1] in ("{", "["):
            text = "'" + text.replace("'", "''") + "'"
        command += ["-p", f"{key}:={text if text != '' else repr('')}"]
    return command


def entry_point(module: str) -> list[str]:
    """The command that starts a node module as its console executable does (stop signals taken before imports)."""
    return [sys.executable, "-u", "-m", "qattn_ros.ros.entry_points", module.rsplit(".", 1)[-1]]


def _die_with_parent() -> None:
    """Linux: SIGTERM this child when the launcher dies (even by SIGKILL), so no node outlives its graph;
    the steering node takes SIGTERM as its cue for a last zero-speed command."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux / not glibc: Ctrl-C still reaches the whole process group
        pass


def stop_as_launch_does(processes: list[subprocess.Popen]) -> None:
    """SIGINT to each running process; SIGTERM to those still running after 5 s, SIGKILL 5 s later."""
    for sig, wait in ((signal.SIGINT, SIGTERM_AFTER), (signal.SIGTERM, SIGKILL_AFTER), (signal.SIGKILL, 0.0)):
        running = [p for p in processes if p.poll() is None]
        for process in running:
            process.send_signal(sig)
        end = time.monotonic() + wait
        while any(p.poll() is None for p in running) and time.monotonic() < end:
            time.sleep(0.05)
    for process in processes:
        process.wait()


def run_graph(nodes: list[tuple[str, dict]], main: str, name: str) -> int:
    """Start `nodes` ([(module, params)]) and watch them; stop all when `main` exits, a node dies or on Ctrl-C.

    The exit status: `main`'s, or 1 if another node died first. Each node chooses its DDS transport itself
    (conventions.init_keeping_signals), as under `ros2 launch`.
    """
    signals.install()  # Ctrl-C and a supervisor's SIGTERM stop the graph; a second one waits for the stop
    processes = {module: subprocess.Popen([*entry_point(module), *ros_args(params)], preexec_fn=_die_with_parent)
                 for module, params in nodes}  # fmt: skip
    status = None
    try:
        while status is None:
            for module, process in processes.items():
                if process.poll() is None:
                    continue
                verdict = exit_verdict(module.rsplit(".", 1)[-1], process.returncode, module == main)
                if verdict.reason is not None:
                    if verdict.failed:
                        print(f"{name}: {verdict.reason}", file=sys.stderr)
                    status = process.returncode if module == main else 1
                    break
            else:
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    signals.stopping()
    stop_as_launch_does(list(processes.values()))
    leader = processes[main].returncode
    return status if status is not None else (leader if leader is not None else 1)
