"""qattn_replay: replay a recorded drive through qattn_steering and evaluate what it publishes.

  qattn_replay data_out/synthetic_bag/test.bag --checkpoint runs/demo/binary_sign/best.safetensors --out reports/replay

Starts the graph of `launch/replay_eval.launch.py` as processes — the bag player, the steering
node (use_sim_time) and the replay evaluator — on the current ROS_DOMAIN_ID, and shuts it
down when the evaluator has written the report. Ctrl-C stops all three; the evaluator keeps
what it evaluated and says where it stopped, and the same command resumes.
"""

from __future__ import annotations

import argparse
import sys

from .graph import STEERING, run_graph

# (executable, module, node name) of the graph, as the launch file starts them
PLAYER = ("qattn_bag_player", "qattn_ros.ros.bag_player", "qattn_bag_player")
EVALUATOR = ("qattn_replay_evaluator", "qattn_ros.ros.replay_evaluator", "qattn_replay_evaluator")


def graph(args: argparse.Namespace) -> list[tuple[tuple[str, str, str], dict]]:
    """Each node with its parameters: the launch file passes the same names."""
    return [
        (PLAYER, {"source": args.source, "mode": args.mode, "rate": args.rate, "start": args.start,
                  "duration": args.duration, "answer_timeout": args.answer_timeout,
                  "startup_timeout": args.startup_timeout,
                  "bag_camera_topic": args.bag_camera_topic, "bag_steering_topic": args.bag_steering_topic}),
        (STEERING, {"checkpoint": args.checkpoint, "device": args.device, "backend": args.backend, "use_sim_time": True,
                    "reliability": "reliable", "camera_timeout": 10.0}),
        (EVALUATOR, {"checkpoint": args.checkpoint, "out": args.out, "device": args.device, "every": args.every,
                     "steps": args.steps, "group": args.group, "record": not args.no_record}),
    ]  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="bag, ROS 2 bag folder, dataset folder, or a YAML mapping {kind: ..., ...}")
    parser.add_argument("--checkpoint", required=True, help="<name>.safetensors (its .json beside it)")
    parser.add_argument("--out", required=True, help="report folder (rerun to resume)")
    parser.add_argument("--mode", choices=("lockstep", "realtime"), default="lockstep")
    parser.add_argument("--rate", type=float, default=1.0, help="real time: playback speed factor")
    parser.add_argument("--every", type=int, default=1, help="evaluate one frame in N (all still go through)")
    parser.add_argument("--start", type=float, default=0.0, help="s into the recording")
    parser.add_argument("--duration", type=float, default=0.0, help="s of recording to play (0: to the end)")
    parser.add_argument("--steps", type=int, default=50, help="deletion / insertion steps")
    parser.add_argument("--group", type=int, default=32, help="frames evaluated (and saved) together")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backend", default="torch", help="the steering node's: torch | onnxruntime[:tensorrt]")
    parser.add_argument("--answer-timeout", type=float, default=20.0, help="s unanswered (not held): a dead graph")
    parser.add_argument("--startup-timeout", type=float, default=60.0, help="s to wait for the graph to come up")
    parser.add_argument("--bag-camera-topic", default="", help="a ROS 2 bag's camera topic")
    parser.add_argument("--bag-steering-topic", default="", help="a ROS 2 bag's steering topic")
    parser.add_argument("--no-record", action="store_true", help="do not record the outputs to mcap")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    nodes = [(module, params) for (_, module, _), params in graph(args)]
    return run_graph(nodes, EVALUATOR[1], "qattn_replay")


if __name__ == "__main__":
    sys.exit(main())
