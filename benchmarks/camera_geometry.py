"""Steering RMSE of a checkpoint on cameras of other aspects than it was trained on, vs its own geometry.

  python -m benchmarks.camera_geometry --checkpoint runs/demo/binary_sign/best.safetensors

Renders the same synthetic roads (a generator seed that no training set uses) at the trained
geometry and at 4:3 (640x480) and 16:9 (1280x720), and runs them through the predictor — the
node's path — with each way of mapping a frame onto the trained geometry: `crop` (the default,
centred), `crop` anchored at the synthetic camera's horizon (0.36 of the height: this renderer
keeps the horizon at that fraction of any frame), and `squash` (what every frame got before
checkpoints recorded their geometry). Labels are the renderer's front-wheel angles (rad). A
checkpoint that records no camera geometry (trained before it was recorded) is rendered for
at `--trained-size`.
Summary: rmse_ratio_4_3 and rmse_ratio_16_9 (RMSE / RMSE at the trained geometry) of the
synthetic camera mapped as documented for it (`crop_anchor: 0.36`), and beside them the centred
crop (the default, right for a camera whose optical axis is at the frame's centre) and the
squash; the rest goes in the details and a bar plot beside the JSON.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from tqdm import tqdm

from qattn_ros.core.atomic import save_figure
from qattn_ros.core.preprocess import CameraGeometry
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.inference.predictor import SteeringPredictor

from .record import RESULTS, record

CAMERAS = {"trained": None, "4_3": (480, 640), "16_9": (720, 1280)}
FITS = {"crop": ("crop", 0.5), "crop_horizon": ("crop", 0.36), "squash": ("squash", 0.5)}


def rmse(predictor: SteeringPredictor, height: int, width: int, fits: dict, frames: int, seed: int) -> dict:
    """{fit: RMSE} over the same rendered frames (each rendered once, run through every fit)."""
    generator = RoadGenerator(height, width, seed=seed)
    errors: dict = {fit: [] for fit in fits}
    for index in tqdm(range(frames), desc=f"{width}x{height}", unit="frame"):
        frame = generator.frame(index)
        for fit, (mode, anchor) in fits.items():
            predictor.fit_camera(mode, anchor, accept_mismatch=True)
            predictor.reset()  # frames are independent roads
            errors[fit].append(predictor.predict(frame.image).wheel_angle - frame.steering)
    return {fit: float(np.sqrt(np.mean(np.square(e)))) for fit, e in errors.items()}


def plot(results: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.5))
    names = [name for name in CAMERAS if name != "trained"]
    for offset, fit in enumerate(FITS):
        axes.bar(np.arange(len(names)) + 0.25 * (offset - 1), [results[n][fit] for n in names], 0.25, label=fit)
    axes.axhline(results["trained"], color="k", linestyle="--", label="trained geometry")
    axes.axhline(1.5 * results["trained"], color="grey", linestyle=":", label="1.5x trained")
    axes.set_xticks(range(len(names)), [f"{n.replace('_', ':')} camera" for n in names])
    axes.set_ylabel("steering RMSE (front wheel, rad)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="runs/demo/binary_sign/best.safetensors")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--seed", type=int, default=2024, help="road generator seed (not a training one)")
    parser.add_argument("--trained-size", default="320x160", help="WxH of the training frames, for a checkpoint "
                        "that does not record them (make_data.py's default)")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one frame at a time, as the node runs it
    predictor = SteeringPredictor(args.checkpoint, "cpu")
    width, height = (int(v) for v in args.trained_size.split("x"))
    trained = predictor.info.camera or CameraGeometry(width, height)
    results: dict = {"trained": rmse(predictor, trained.height, trained.width, {"crop": FITS["crop"]}, args.frames,
                                     args.seed)["crop"]}  # fmt: skip
    for name, size in CAMERAS.items():
        if size is not None:
            results[name] = rmse(predictor, *size, FITS, args.frames, args.seed)
    base = results["trained"]
    plot(results, RESULTS / "camera_geometry.png")
    ratio = {name: {fit: v / base for fit, v in r.items()} for name, r in results.items() if name != "trained"}
    record(
        "camera_geometry",
        {  # the synthetic camera set up as documented (crop_anchor 0.36); centred (the default) and squashed beside it
            "rmse_ratio_4_3": round(ratio["4_3"]["crop_horizon"], 3),
            "rmse_ratio_16_9": round(ratio["16_9"]["crop_horizon"], 3),
            "rmse_ratio_4_3_centred": round(ratio["4_3"]["crop"], 3),
            "rmse_ratio_16_9_centred": round(ratio["16_9"]["crop"], 3),
            "rmse_ratio_4_3_squashed": round(ratio["4_3"]["squash"], 3),
        },
        checkpoint=args.checkpoint,
        trained_geometry=trained.describe(),
        recorded_in_checkpoint=predictor.info.camera is not None,
        frames=args.frames,
        seed=args.seed,
        rmse_rad={
            "trained": round(base, 5),
            **{n: {f: round(v, 5) for f, v in r.items()} for n, r in results.items() if n != "trained"},
        },
        rmse_ratio={n: {f: round(v, 3) for f, v in r.items()} for n, r in ratio.items()},
        fits={name: {"mode": mode, "anchor": anchor} for name, (mode, anchor) in FITS.items()},
    )


if __name__ == "__main__":
    main()
