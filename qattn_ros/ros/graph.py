"""Start a graph of nodes as processes (what a launch file does, for machines without `launch`)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

# (executable, module, node name): the steering node as every graph starts it
STEERING = ("steering_node", "qattn_ros.ros.steering_node", "qattn_steering")
# Fast DDS transports for a graph on one machine: shared memory only, a camera frame in one message (up to
# 2 MB) in an 8 MB segment per process. Over the default UDP path camera-sized best-effort samples lose
# fragments under load; with SHM's default 64 KB fragments a reliable 640x480 frame often waited seconds for a
# repair (replay 5x slower); LARGE_DATA's TCP transport (Fast DDS 3.2) sometimes never delivered a connection's
# first samples and deadlocked in its destructor when a node exited.
LOCAL_TRANSPORTS = "SHM?max_msg_size=2MB&sockets_size=8MB"


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


def _die_with_parent() -> None:
    """Linux: SIGTERM this child when the launcher dies (even by SIGKILL), so no node outlives its graph;
    the steering node takes SIGTERM as its cue for a last zero-speed command."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux / not glibc: Ctrl-C still reaches the whole process group
        pass


def run_graph(nodes: list[tuple[str, dict]], main: str, name: str) -> int:
    """Start `nodes` ([(module, params)]); when `main` exits, or on Ctrl-C, stop the rest. `main`'s exit code.

    Children get SIGINT (their stop path: the steering node's last zero-speed command, the
    evaluator's report), then SIGKILL after 30 s.
    """
    # Ctrl-C and a supervisor's SIGTERM stop the graph, even when a shell started us in the background
    # (SIGINT inherited ignored, so Python would install no handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("FASTDDS_BUILTIN_TRANSPORTS", LOCAL_TRANSPORTS)
    processes = {module: subprocess.Popen([sys.executable, "-m", module, *ros_args(params)], env=env,
                                          preexec_fn=_die_with_parent)
                 for module, params in nodes}  # fmt: skip
    leader = processes[main]
    try:
        while leader.poll() is None:
            for module, process in processes.items():
                if module != main and process.poll() not in (None, 0):
                    print(f"{name}: {module} exited early (see its message above)", file=sys.stderr)
                    leader.send_signal(signal.SIGINT)
                    break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes.values():
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return leader.returncode if leader.returncode is not None else 1
