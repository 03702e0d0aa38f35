"""The console executables (what `ros2 run`, `ros2 launch` and the graphs start): stop signals first, then imports.

A node module imports torch and rclpy (1-2 s). A Ctrl-C in that time used to end in a 30-60 line
traceback; here the signal handling of `signals` is in place before the import, and an interrupted
start ends with status 130 and one line.
"""

from __future__ import annotations

import importlib
import sys

from . import signals


def run(module: str, program: str) -> int:
    signals.install()
    try:
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        signals.ignore()
        print(f"{program}: interrupted while starting", file=sys.stderr)
        return signals.INTERRUPTED_BEFORE_START
    status = main()
    signals.ignore()
    return status


def steering_node() -> int:
    return run("qattn_ros.ros.steering_node", "qattn_steering")


def camera_publisher() -> int:
    return run("qattn_ros.ros.camera_publisher", "qattn_camera")


def bag_player() -> int:
    return run("qattn_ros.ros.bag_player", "qattn_bag_player")


def replay_evaluator() -> int:
    return run("qattn_ros.ros.replay_evaluator", "qattn_replay_evaluator")


def simulator() -> int:
    return run("qattn_ros.ros.simulator", "qattn_simulator")


def replay() -> int:
    return run("qattn_ros.ros.replay", "qattn_replay")


def sim_drive() -> int:
    return run("qattn_ros.ros.sim_drive", "qattn_sim")


if __name__ == "__main__":  # python -m qattn_ros.ros.entry_points <executable> [args]: as the console script
    executable = sys.argv.pop(1)
    sys.exit(globals()[executable]())
