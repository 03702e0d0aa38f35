#!/usr/bin/env python3
"""The pictures of README.md and docs/ that no benchmark writes, from their sources.

  python docs/figures.py                         # architecture.png and node_graph.png (no checkpoint needed)
  python docs/figures.py --demo runs/demo        # also demo_attention_overlays.jpg and demo_closed_loop.gif
                                                 # (from training/demo.py's output) and node_overlay.jpg

architecture.png: the package's layers and who uses the predictor. node_graph.png: qattn_steering's
topics as `qattn_ros.rules.interfaces` declares them. node_overlay.jpg: a held-out synthetic frame and the
attention overlay the node publishes for it (the node's own overlay code), from the demo checkpoint.
The other figures are written by their benchmarks: headline_*.png (benchmarks/headline.py, copied from
its --out folder), closed_loop_sweep.png (benchmarks/closed_loop.py), closed_loop_training.png
(benchmarks/closed_loop_training.py), benchmarks/results/camera_geometry.png (benchmarks/camera_geometry.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from qattn_ros.rules.interfaces import STEERING

DOCS = Path(__file__).resolve().parent
GREY, BLUE, GREEN, ORANGE = "#eeeeee", "#d6e6f5", "#dcefd6", "#fbe3c8"


def box(ax, x: float, y: float, w: float, h: float, text: str, colour: str = GREY, size: int = 9) -> None:
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01,rounding_size=0.015", fc=colour, ec="#555555"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def arrow(ax, start: tuple[float, float], end: tuple[float, float], label: str = "") -> None:
    ax.annotate("", end, start, arrowprops={"arrowstyle": "->", "color": "#333333", "lw": 1.2})
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.012, label, ha="center", fontsize=7.5)


def architecture(out: Path) -> None:
    """data -> model -> predictor -> node / replay / simulator, with the folders that hold each."""
    fig = Figure(figsize=(11, 5.2))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    box(ax, 0.01, 0.70, 0.18, 0.22, "data\nsynthetic roads, Udacity bags,\nfolders, sim logs, ROS 2 bags\n"
        "qattn_ros/data/ (+ cache)", BLUE)  # fmt: skip
    box(ax, 0.24, 0.70, 0.18, 0.22, "training\nqattn_ros/fit/ (DDP)\ntraining/train.py, demo.py,\n"
        "train_closed_loop.py", BLUE)  # fmt: skip
    box(ax, 0.24, 0.38, 0.18, 0.22, "model\nqattn_ros/model/\nPilotNet encoder, quantizer,\nattention, head "
        "(torch only)", GREEN)  # fmt: skip
    box(ax, 0.47, 0.70, 0.18, 0.22, "checkpoint\nbest.safetensors + best.json\n(no pickle; shipped: models/;\n"
        "ONNX via qattn_export)", GREEN)  # fmt: skip
    box(ax, 0.47, 0.38, 0.18, 0.22, "predictor\nqattn_ros/inference/\nSteeringPredictor:\ntorch | onnxruntime",
        GREEN)  # fmt: skip
    consumers = [
        ("steering node\nqattn_ros/ros/steering_node.py\ncamera → cmd_vel, attention", 0.78),
        ("replay\nbag player → node → evaluator\nqattn_replay, replay_eval.launch.py", 0.56),
        ("closed loop\nqattn_ros/sim/ world ↔ node\nqattn_sim, sim.launch.py", 0.34),
        ("explanations\nqattn_ros/explain/\nevaluation/evaluate.py, benchmarks", 0.12),
    ]
    for text, y in consumers:
        box(ax, 0.73, y, 0.25, 0.18, text, ORANGE)
        arrow(ax, (0.65, 0.49), (0.73, y + 0.09))
    arrow(ax, (0.19, 0.81), (0.24, 0.81), "frames")
    arrow(ax, (0.33, 0.60), (0.33, 0.70), "")
    arrow(ax, (0.42, 0.81), (0.47, 0.81), "weights")
    arrow(ax, (0.56, 0.70), (0.56, 0.60), "")
    arrow(ax, (0.42, 0.49), (0.47, 0.49), "network")
    box(ax, 0.01, 0.06, 0.64, 0.2, "qattn_ros/rules/, tested without ROS: command_gate (clamp, finite check, "
        "watchdog, enable, lifecycle),\nnode_status (diagnostics), steering_params, pairing and replay_evaluation, "
        "ros/launch_rules;\nqattn_ros/ros/ is the only code that imports rclpy: nodes hold transport and call the "
        "layers above", GREY, 8.5)  # fmt: skip
    fig.savefig(out, dpi=110)


def node_graph(out: Path) -> None:
    """qattn_steering with its inputs on the left and outputs and services on the right."""
    inputs = [t for t in STEERING.topics if t.direction == "in"]
    outputs = [t for t in STEERING.topics if t.direction != "in"]
    fig = Figure(figsize=(10, 0.42 * len(outputs) + 1.2))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, len(outputs) + 1)
    middle = (len(outputs) + 1) / 2
    box(ax, 0.02, middle - 0.7, 0.17, 1.4, "camera\n(any driver, qattn_camera,\nbag player, simulator)", BLUE, 8.5)
    box(ax, 0.42, middle - 1.2, 0.16, 2.4, "qattn_steering\nlifecycle node\n\ncheckpoint →\npredictor", GREEN, 9)
    for i, topic in enumerate(inputs):
        y = middle + 0.35 - 0.7 * i
        arrow(ax, (0.19, y), (0.42, y), "")
        ax.text(0.305, y + 0.08, f"{topic.name}  ({topic.type.split('/')[-1]})", ha="center", fontsize=8)
    for i, topic in enumerate(outputs):
        y = len(outputs) - i
        start = (0.58, middle + (y - middle) * 0.35)
        arrow(ax, start, (0.66, y))
        kind = "service" if topic.direction == "service" else topic.type.split("/")[-1]
        ax.text(0.665, y, f"{topic.name}", va="center", fontsize=8.5, family="monospace")
        ax.text(0.83, y, kind, va="center", fontsize=8)
    fig.savefig(out, dpi=110)


def demo_figures(run: Path) -> None:
    """training/demo.py's overlays and closed-loop GIF (scaled to 3/4), and the node's overlay of one frame."""
    import cv2
    from PIL import Image

    overlays = cv2.imread(str(run / "attention_overlays.png"))
    cv2.imwrite(str(DOCS / "demo_attention_overlays.jpg"), overlays, [cv2.IMWRITE_JPEG_QUALITY, 80])
    gif = Image.open(run / "closed_loop.gif")
    frames, durations = [], []
    for index in range(getattr(gif, "n_frames", 1)):
        gif.seek(index)
        frame = gif.convert("RGB")
        frames.append(frame.resize((frame.width * 3 // 4, frame.height * 3 // 4)))
        durations.append(gif.info.get("duration", 100))
    frames[0].save(DOCS / "demo_closed_loop.gif", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    node_overlay(run / "binary_sign" / "best", DOCS / "node_overlay.jpg")


def node_overlay(checkpoint: Path, out: Path) -> None:
    """A 640x480 held-out synthetic frame beside the overlay the node would publish for it."""
    import cv2
    import numpy as np

    from qattn_ros.data.splits import SPLIT_PURPOSES
    from qattn_ros.data.synthetic import RoadGenerator
    from qattn_ros.explain.overlay import overlay
    from qattn_ros.inference.predictor import SteeringPredictor

    predictor = SteeringPredictor(checkpoint, "cpu")
    predictor.fit_camera("crop", 0.36, False)  # the synthetic camera's horizon (docs/node.md, camera geometry)
    rgb = RoadGenerator(480, 640, purpose=SPLIT_PURPOSES["test"]).frame(3).image
    prediction = predictor.predict(rgb)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    top, bottom, left, right = predictor.model_box(*rgb.shape[:2])
    shown = bgr.copy()
    inside = shown[top:bottom, left:right]
    overlay(inside, prediction.attention, 0.5, "jet", bgr=True, out=inside)
    cv2.imwrite(str(out), np.hstack([bgr, shown]), [cv2.IMWRITE_JPEG_QUALITY, 85])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, help="training/demo.py's output folder (runs/demo)")
    parser.add_argument("--out", type=Path, default=DOCS, help="where architecture.png and node_graph.png go")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    architecture(args.out / "architecture.png")
    node_graph(args.out / "node_graph.png")
    if args.demo is not None:
        demo_figures(args.demo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
