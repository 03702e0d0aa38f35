"""qattn_sim: the steering node drives the simulated road, in closed loop; autonomy measured.

  qattn_sim --checkpoint runs/demo/binary_sign/best.safetensors --km 2 --report reports/sim

Starts the graph of `launch/sim.launch.py` as processes — the simulator and the steering node
on sim time — on the current ROS_DOMAIN_ID, and stops it when the simulator has driven the
track and written its report. Ctrl-C stops both; the report covers what was driven.
"""

from __future__ import annotations

import argparse
import sys

from ..sim.track import HELD_OUT_SEEDS
from .graph import STEERING, run_graph

# (executable, module, node name), as the launch file starts them
SIMULATOR = ("qattn_simulator", "qattn_ros.ros.simulator", "qattn_simulator")


def graph(args: argparse.Namespace) -> list[tuple[tuple[str, str, str], dict]]:
    """Each node with its parameters: the launch file passes the same names."""
    return [
        (SIMULATOR, {"track_seed": args.track_seed, "length_km": args.km, "mode": args.mode, "rate": args.rate,
                     "width": args.width, "height": args.height, "transport": args.transport,
                     "report": args.report}),
        (STEERING, {"checkpoint": args.checkpoint, "device": args.device, "use_sim_time": True,
                    "transport": args.transport, "reliability": "reliable", "cruise_speed": args.speed}),
    ]  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--checkpoint",
        default="default",
        help="a shipped model (default, sim_roads) or <name>.safetensors (its .json beside it)",
    )
    parser.add_argument("--track-seed", type=int, default=HELD_OUT_SEEDS[0], help="held out: 1000-1999")
    parser.add_argument("--km", type=float, default=2.0)
    parser.add_argument("--speed", type=float, default=15.0, help="m/s: the node's cruise_speed")
    parser.add_argument("--mode", choices=("lockstep", "realtime"), default="lockstep")
    parser.add_argument("--rate", type=float, default=20.0, help="camera Hz")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=160)
    parser.add_argument("--transport", choices=("raw", "compressed"), default="raw")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--report", default="reports/sim", help="report folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_graph([(module, params) for (_, module, _), params in graph(args)], SIMULATOR[1], "qattn_sim")


if __name__ == "__main__":
    sys.exit(main())
