"""What the package's nodes share: their DDS transport, how they take signals, the latched QoS, stamps."""

from __future__ import annotations

import faulthandler
import signal
import sys
from collections.abc import Callable
from typing import TypeVar

import rclpy
import rclpy.logging
from builtin_interfaces.msg import Time
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from . import signals
from .dds_transport import apply_transport

Node = TypeVar("Node")

# the last message on a topic, kept for whoever subscribes later (status topics)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def init_keeping_signals(args: list[str] | None) -> None:
    """rclpy.init with the first SIGINT or SIGTERM raised as KeyboardInterrupt, later ones counted (`signals`).

    rclpy's own handlers would shut the context down before a node could send its last message (the steering
    node's zero-speed command, the evaluator's and the simulator's reports). SIGUSR1 prints every thread's
    stack to stderr (`kill -USR1 <pid>`: where a node that seems stuck is). Before rclpy.init, the DDS
    transport is chosen (dds_transport: one that carries whole camera frames, unless the user chose one) and
    the choice said once in the log.
    """
    signals.install()
    transport = apply_transport()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    logger = rclpy.logging.get_logger("qattn_ros")
    (logger.warning if transport.warning else logger.info)(transport.message)
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def stamp_from_ns(stamp_ns: int) -> Time:
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def create_node(factory: Callable[[], Node], refused: tuple[type[BaseException], ...], program: str) -> Node | int:
    """The node, or the exit status when it does not start: 1 after one line on stderr for a `refused` error
    (bad parameters, checkpoint), 130 for Ctrl-C while loading (nothing done yet)."""
    try:
        return factory()
    except refused as error:
        print(f"{program}: {error}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print(f"{program}: stopped by {(signals.received() or ['a signal'])[0]} while starting", file=sys.stderr)
        code = signals.INTERRUPTED_BEFORE_START
    rclpy.try_shutdown()
    return code
