#!/usr/bin/env python3
"""Evaluate explanations: checkpoints x saliency methods x a dataset -> a report folder.

  python evaluation/evaluate.py --checkpoint kim_canny=runs/kc/best --checkpoint ours=runs/qs/best \
      --data "{kind: simlog, path: data_out/synthetic/test}" --methods attention,visual_backprop,gradcam,random \
      --frames 500 --out reports/synthetic

Writes <out>/<model>/<method>.jsonl per frame as it goes (rerun to resume): deletion onto the
substrate, ROAD most- and least-relevant-first (noisy linear imputation), insertion, mask scores
and the uniform-attention shift; <method>.sanity.json holds the cascading-randomization check on
the first --sanity-frames frames; <model>/model.json the checkpoint and this run's seconds per
method. Then results.json, table.md, curves.png and overlays.png (frames where the methods disagree
most). docs/evaluation.md describes every measure.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qattn_ros.core.atomic import write_json
from qattn_ros.core.errors import CheckpointError, ConfigError, DataError
from qattn_ros.data.sources import open_source, spec_from_text
from qattn_ros.data.time_blocks import BLOCKS, TimeBlocks
from qattn_ros.explain.engine import EvalSettings, evaluate_method, read_results, sanity_method
from qattn_ros.explain.report import plot_overlays, write_report
from qattn_ros.explain.saliency import METHODS, SaliencyError, saliency
from qattn_ros.inference.predictor import Frames, SteeringPredictor


@dataclass
class Evaluated:
    """A named checkpoint and the dataset's frames at its preprocessing."""

    name: str
    predictor: SteeringPredictor
    frames: Frames


def overlay_grid(models: list[Evaluated], methods: list[str], out: Path, count: int = 4) -> Path | None:
    """Frames where the first model's methods disagree most (spread of deletion AUC / its mean)."""
    first = models[0]
    columns = [(m, method) for m in models for method in methods if (out / m.name / f"{method}.jsonl").is_file()]
    scores = {
        (m.name, method): {r["frame"]: r["deletion_auc"] for r in read_results(out / m.name / f"{method}.jsonl")}
        for m, method in columns
    }
    runs = {method: scores[first.name, method] for method in methods if scores.get((first.name, method))}
    common = sorted(set.intersection(*(set(v) for v in runs.values()))) if runs else []
    if not common:
        return None
    table = np.array([[runs[m][f] for m in runs] for f in common])
    spread = (table.max(axis=1) - table.min(axis=1)) / np.maximum(table.mean(axis=1), 1e-12)
    picks = [common[i] for i in np.argsort(-spread)[:count]]
    rows = []
    for frame in picks:
        panels = []
        for model, method in columns:
            x = model.predictor.normalize(model.frames.images[frame : frame + 1])
            heat = saliency(method, model.predictor.model, x, np.array([frame]))[0].cpu().numpy()
            auc = scores[model.name, method].get(frame, float("nan"))
            panels.append((f"{model.name}/{method}\ndel AUC {auc:.4f}", heat))
        rows.append((f"frame {frame}", first.predictor.preprocessing.to_rgb(first.frames.images[frame]), panels))
    return plot_overlays(rows, out / "overlays.png")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH",
                        help="a checkpoint to evaluate, with a name for the report (repeatable)")  # fmt: skip
    parser.add_argument(
        "--data", required=True, help="data source: a YAML mapping {kind: ..., ...} or a simulator log path"
    )
    parser.add_argument("--methods", default="attention,visual_backprop,gradcam,random",
                        help=f"comma-separated, from {', '.join(METHODS)}")  # fmt: skip
    parser.add_argument("--out", required=True, help="report folder (rerun to resume)")
    parser.add_argument("--frames", type=int, default=None, help="evenly spaced frames to use (default: all)")
    parser.add_argument("--block", choices=BLOCKS, help="only this time block of the recording (data.blocks)")
    parser.add_argument("--blocks", type=float, nargs=3, default=(0.7, 0.1, 0.2), metavar=("TRAIN", "VAL", "TEST"),
                        help="shares of the time blocks, as the checkpoint was trained with")  # fmt: skip
    parser.add_argument("--gap-s", type=float, default=2.0, help="seconds between time blocks")
    parser.add_argument("--order", default="train,val,test", help="the time blocks in time order")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--substrate", choices=("mean", "blur"), default="mean")
    parser.add_argument("--batch-size", type=int, help="images per forward pass (default: 64 on CPU, 1024 on GPU)")
    parser.add_argument("--no-insertion", action="store_true")
    parser.add_argument("--road-steps", type=int, default=10, help="ROAD removal fractions k/N (0: no ROAD)")
    parser.add_argument("--sanity-frames", type=int, default=16,
                        help="frames of the cascading-randomization check (0: none)")  # fmt: skip
    parser.add_argument("--no-uniform", action="store_true", help="skip the uniform-attention intervention")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache-dir", default="data_out/cache")
    parser.add_argument("--cache", help="use this prebuilt cache entry folder (its preprocessing must match)")
    parser.add_argument("--crop-anchor", type=float, default=0.5,
                        help="frames of another aspect than the checkpoint's camera are cropped onto it as the "
                             "node does: where the crop of a taller frame sits (0 top, 0.5 centre)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    settings = EvalSettings(steps=args.steps, substrate=args.substrate, batch_size=args.batch_size, seed=args.seed,
                            insertion=not args.no_insertion, road_steps=args.road_steps,
                            uniform=not args.no_uniform, sanity_frames=args.sanity_frames)  # fmt: skip
    models: list[Evaluated] = []
    try:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"--methods: unknown {', '.join(unknown)}; expected {', '.join(METHODS)}")
        if not 0.0 <= args.crop_anchor <= 1.0:
            raise ConfigError(f"--crop-anchor {args.crop_anchor}: expected 0..1 (0 top, 0.5 centre, 1 bottom)")
        source = open_source(spec_from_text(args.data))
        for entry in args.checkpoint:
            name, _, path = entry.partition("=")
            if not path:
                raise ConfigError(f"--checkpoint {entry!r}: expected NAME=PATH")
            predictor = SteeringPredictor(path, args.device)
            predictor.fit_camera("crop", args.crop_anchor)
            for note in predictor.info.notes:
                print(f"evaluate: note: {note}", file=sys.stderr)
            blocks = TimeBlocks(*args.blocks, args.gap_s, tuple(args.order.split(",")))
            frames = predictor.frames(source, args.cache_dir, args.frames, args.cache, args.block, blocks)
            if len(frames) == 0:
                raise DataError(f"{args.data}: no frames to evaluate")
            models.append(Evaluated(name, predictor, frames))
            info = predictor.info
            described = {"checkpoint": path, "variant": info.model.variant, "bits": info.model.bits,
                         "steering_unit": info.steering_unit, "frames": len(frames)}  # fmt: skip
            write_json(out / name / "model.json", described)
            seconds: dict[str, float] = {}  # where this run's time went, per method
            for method in methods:
                if method == "attention" and not predictor.has_attention:
                    continue
                started = time.perf_counter()
                # a random order has no most- or least-relevant pixels: ROAD's floor is each map's own LeRF, and
                # imputing 2 x road_steps random removals per frame made the floor cost more than the maps it judges
                floor = dataclasses.replace(settings, road_steps=0) if method == "random" else settings
                evaluate_method(predictor, method, frames, out / name / f"{method}.jsonl", floor)
                sanity_method(predictor, method, frames, out / name / f"{method}.sanity.json", settings)
                seconds[method] = round(time.perf_counter() - started, 3)
                write_json(out / name / "model.json", described | {"seconds": seconds})
    except (ConfigError, DataError, CheckpointError, SaliencyError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        if out.is_dir():
            write_report(out)
        return 1
    results = write_report(out)
    overlay_grid(models, methods, out)
    print((out / "table.md").read_text())
    print(f"report: {out}/results.json, table.md, curves.png, overlays.png (baseline: {results['baseline']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
