#!/usr/bin/env python3
"""Evaluate explanations: checkpoints x saliency methods x a dataset -> a report folder.

  python training/evaluate.py --checkpoint kim_canny=runs/kc/best --checkpoint ours=runs/qs/best \
      --data "{kind: simlog, path: data_out/synthetic/test}" --methods attention,visual_backprop,gradcam,random \
      --frames 500 --out reports/synthetic

Writes <out>/<model>/<method>.jsonl per frame as it goes (rerun to resume), then
results.json, table.md, curves.png and overlays.png (frames where the methods disagree most).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from qattn_ros.data.cache import build_cache, open_cache  # noqa: E402
from qattn_ros.data.frames import FrameSet  # noqa: E402
from qattn_ros.data.record import DataError  # noqa: E402
from qattn_ros.data.sources import open_source  # noqa: E402
from qattn_ros.explain.engine import EvalSettings, evaluate_method, read_results  # noqa: E402
from qattn_ros.explain.overlay import overlay  # noqa: E402
from qattn_ros.explain.report import write_report  # noqa: E402
from qattn_ros.explain.saliency import METHODS, SaliencyError, saliency  # noqa: E402
from qattn_ros.fit.trainer import pick_device  # noqa: E402
from qattn_ros.model.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from qattn_ros.model.config import ConfigError  # noqa: E402
from qattn_ros.preprocess import Preprocessing  # noqa: E402


class Evaluated:
    """A checkpoint with its frames (cached at its preprocessing) and targets in its unit."""

    def __init__(self, name: str, path: str, source, frames: int | None, cache_dir: str, cache: str | None, device):
        self.name, self.path = name, path
        self.model, self.info = load_checkpoint(path, device)
        self.pre = Preprocessing.from_dict(self.info.preprocessing)
        if cache:
            cached = open_cache(Path(cache))
            if cached.meta["preprocessing"] != self.pre.cache_key():
                raise DataError(f"cache {cache} was built with preprocessing {cached.meta['preprocessing']}, "
                                f"but {path} needs {self.pre.cache_key()}")  # fmt: skip
        else:
            cached = build_cache(source, self.pre, cache_dir)
        rows = np.arange(len(cached)) if not frames else np.linspace(0, len(cached) - 1, min(frames, len(cached)))
        self.frames = FrameSet([(cached, rows.astype(np.int64))], self.info.steering_unit, self.info.positive_is_left)
        self.images, self.targets = self.frames.gather(np.arange(len(self.frames)))
        self.masks = self.frames.gather_masks(np.arange(len(self.frames))) if self.frames.has_masks else None


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
    fig, axes = plt.subplots(
        len(picks), 1 + len(columns), figsize=(2.6 * (1 + len(columns)), 1.6 * len(picks)), squeeze=False
    )
    for row, frame in enumerate(picks):
        rgb = first.pre.to_rgb(first.images[frame])
        axes[row, 0].imshow(rgb)
        axes[row, 0].set_title(f"frame {frame}", fontsize=7)
        for col, (model, method) in enumerate(columns, start=1):
            x = model.pre.normalize(torch.from_numpy(np.array(model.images[frame : frame + 1])))
            heat = saliency(method, model.model, x.to(next(model.model.parameters()).device), np.array([frame]))[0]
            axes[row, col].imshow(overlay(model.pre.to_rgb(model.images[frame]), heat.cpu().numpy(), alpha=0.7))
            auc = scores[model.name, method].get(frame, float("nan"))
            axes[row, col].set_title(f"{model.name}/{method}\ndel AUC {auc:.4f}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "overlays.png", dpi=90)
    plt.close(fig)
    return out / "overlays.png"


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
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--substrate", choices=("mean", "blur"), default="mean")
    parser.add_argument("--batch-size", type=int, help="images per forward pass (default: 64 on CPU, 1024 on GPU)")
    parser.add_argument("--no-insertion", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache-dir", default="data_out/cache")
    parser.add_argument("--cache", help="use this prebuilt cache entry folder (its preprocessing must match)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    device = pick_device(args.device)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    settings = EvalSettings(steps=args.steps, substrate=args.substrate, batch_size=args.batch_size, seed=args.seed,
                            insertion=not args.no_insertion)  # fmt: skip
    models: list[Evaluated] = []
    try:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"--methods: unknown {', '.join(unknown)}; expected {', '.join(METHODS)}")
        spec = yaml.safe_load(args.data) if args.data.strip().startswith("{") else args.data
        source = open_source(spec)
        for entry in args.checkpoint:
            name, _, path = entry.partition("=")
            if not path:
                raise ConfigError(f"--checkpoint {entry!r}: expected NAME=PATH")
            model = Evaluated(name, path, source, args.frames, args.cache_dir, args.cache, device)
            if len(model.frames) == 0:
                raise DataError(f"{args.data}: no frames to evaluate")
            models.append(model)
            (out / name).mkdir(parents=True, exist_ok=True)
            (out / name / "model.json").write_text(json.dumps(
                {"checkpoint": path, "variant": model.info.model.variant, "bits": model.info.model.bits,
                 "steering_unit": model.info.steering_unit, "frames": len(model.frames)}, indent=2))  # fmt: skip
            for method in methods:
                if method == "attention" and model.model.attention is None:
                    continue
                evaluate_method(model.model, method, model.images, model.pre.normalize, out / name / f"{method}.jsonl",
                                settings, model.masks, model.targets, device)  # fmt: skip
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
