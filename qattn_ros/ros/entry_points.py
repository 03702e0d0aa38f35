"""The console executables (what `ros2 run`, `ros2 launch` and the graphs start): stop signals first, then imports.

A node module imports torch and rclpy (1-3 s). A Ctrl-C in that time used to end in a 30-60 line
traceback (or, inside torch's native code, an abort); here the signal handling of `signals` is in
place before the import, counts the signal while the import runs, and an interrupted start ends as
soon as the import is done, with status 130 and one line.
"""

from __future__ import annotations

import importlib
import os
import sys
from functools import partial

from . import signals


def interrupted_while_starting(program: str) -> None:
    """One line naming the signal, status 130, at once: nothing runs yet, and no exit handler (nor Python's
    re-raise of an unhandled KeyboardInterrupt as SIGINT) may turn this into a traceback or another status."""
    sys.stdout.flush()
    signal_name = (signals.received() or ["a signal"])[0]
    print(f"{program}: stopped by {signal_name} while starting", file=sys.stderr, flush=True)
    os._exit(signals.INTERRUPTED_BEFORE_START)


def run(module: str, program: str) -> int:
    signals.install()
    signals.count_only()  # a KeyboardInterrupt inside torch's import can abort the process from native code
    main = importlib.import_module(module).main
    try:
        signals.raise_from_now()  # a stop that came while importing ends the start here
        status = main()  # a node's main takes the stop itself once it is up; one before that comes out here
    except KeyboardInterrupt:
        interrupted_while_starting(program)
    signals.ignore()
    return status


# what each console executable runs (setup.py's console_scripts name these)
steering_node = partial(run, "qattn_ros.ros.steering_node", "qattn_steering")
camera_publisher = partial(run, "qattn_ros.ros.camera_publisher", "qattn_camera")
bag_player = partial(run, "qattn_ros.ros.bag_player", "qattn_bag_player")
replay_evaluator = partial(run, "qattn_ros.ros.replay_evaluator", "qattn_replay_evaluator")
simulator = partial(run, "qattn_ros.ros.simulator", "qattn_simulator")
replay = partial(run, "qattn_ros.ros.replay", "qattn_replay")
sim_drive = partial(run, "qattn_ros.ros.sim_drive", "qattn_sim")


if __name__ == "__main__":  # python -m qattn_ros.ros.entry_points <executable> [args]: as the console script
    executable = sys.argv.pop(1)
    sys.exit(globals()[executable]())
