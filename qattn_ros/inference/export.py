"""qattn_export: a checkpoint -> <name>.onnx beside it, written only when ONNX Runtime reproduces torch.

  qattn_export runs/demo/binary_sign/best.safetensors      # -> best.onnx and best.onnx.json

The graph takes the normalized image `image` (B, 3, h, w) and returns `steering` (B,) in the
checkpoint's unit and, for the attention variants, `attention` (B, h/8, w/8). A recurrent model also
takes its LSTM state `h`, `c` (B, hidden) and returns the next one as `h_out`, `c_out`; zeros start
a sequence, as the torch model's `state=None` does.

The sidecar <name>.onnx.json is the checkpoint's own contract (model config, preprocessing, steering
unit and sign, vehicle geometry) with the SHA-256 of the ONNX file, plus an `onnx` section: the source
weights and their SHA-256, opset, input and output names, and the largest differences verification
found. Verification runs torch and ONNX Runtime (CPU) on the same frames — synthetic road frames
through the checkpoint's own preprocessing, one at a time as the node runs them (the state carried
for a recurrent model) and as one batch — and refuses the export, writing nothing, when any output
differs by more than the tolerance.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.atomic import temp_beside
from ..core.errors import CheckpointError, ConfigError
from ..model.checkpoint import (
    checkpoint_paths,
    commit_pair,
    current_sidecar,
    file_sha256,
    load_checkpoint,
    parse_sidecar,
)
from ..model.network import RecurrentState, SteeringNet, SteeringOutput
from ..model.quantizer import code_range
from .backends import ATTENTION, IMAGE, STATE_IN, STATE_OUT, STEERING, OnnxRuntimeNet, onnx_paths
from .predictor import exact_float32

OPSET = 17
TOLERANCE = 1e-5
FLIP_MARGIN = 2e-6  # quantizer steps: closer to a rounding boundary than float32 kernels agree (seen: 4e-7)
CAMERA = (480, 640)  # verification frames are rendered at this size, then preprocessed as the node does


class ExportError(RuntimeError):
    """The export was refused (its outputs differ from torch's); the message says by how much."""


class ExportedNet(nn.Module):
    """SteeringNet with plain tensors in and out, in the order of the graph's names."""

    def __init__(self, net: SteeringNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return flatten(self.net(image, tuple(state) if state else None))


def flatten(out: SteeringOutput) -> tuple[torch.Tensor, ...]:
    """steering[, attention][, h_out, c_out]: what the graph returns, for comparing outputs too."""
    return (out.steering, *((out.attention,) if out.attention is not None else ()), *(out.state or ()))


def graph_names(net: SteeringNet) -> tuple[list[str], list[str]]:
    recurrent = net.config.recurrent
    inputs = [IMAGE, *(STATE_IN if recurrent else ())]
    outputs = [STEERING, *((ATTENTION,) if net.attention is not None else ()), *(STATE_OUT if recurrent else ())]
    return inputs, outputs


def write_onnx(net: SteeringNet, path: Path, opset: int = OPSET) -> None:
    """The TorchScript exporter: torch.export cannot trace the quantizer's initialized-buffer branch."""
    inputs, outputs = graph_names(net)
    height, width = net.config.input_height, net.config.input_width
    example = (torch.zeros(1, 3, height, width), *(torch.zeros(1, net.config.hidden_dim) for _ in inputs[1:]))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings: the verification is what counts
        torch.onnx.export(ExportedNet(net).eval(), example, str(path), dynamo=False, opset_version=opset,
                          input_names=inputs, output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in inputs + outputs})  # fmt: skip


def verification_frames(net: SteeringNet, preprocessing, count: int) -> torch.Tensor:
    """(count, 3, h, w) normalized model inputs from synthetic road frames, as the node would feed them."""
    from ..data.synthetic import RoadGenerator

    generator = RoadGenerator(*CAMERA, seed=7)
    images = np.stack([preprocessing.to_model_uint8(generator.frame(i).image) for i in range(count)])
    return preprocessing.normalize(torch.from_numpy(images))


def code_margin(net: SteeringNet, x: torch.Tensor) -> torch.Tensor:
    """(B,) distance, in quantizer steps, from each frame's features to the nearest rounding boundary (inf if none).

    A feature that close to a boundary rounds to the neighbouring code under any other float
    summation order (ONNX Runtime's kernels, another thread count): its output then moves by a
    whole code, a difference no export can avoid and no sign of a wrong graph.
    """
    if net.quantizer is None:
        return torch.full((x.shape[0],), float("inf"))
    with torch.no_grad(), exact_float32():
        v = net.features(x) / (net.quantizer.step.abs() + 1e-8)
    low, high = code_range(net.quantizer.bits)
    if net.quantizer.bits == 1:
        distance = v.abs()  # the sign's boundary is 0
    else:
        clipped = v.clamp(low, high)
        distance = (clipped - clipped.floor() - 0.5).abs()
    return distance.flatten(1).min(dim=1).values


def compare(net: SteeringNet, session: OnnxRuntimeNet, frames: torch.Tensor, tolerance: float
            ) -> tuple[dict[str, float], list[dict], list[dict]]:  # fmt: skip
    """|torch - onnxruntime| per output over the frames, each alone (a recurrent model gets torch's state on
    both sides, so one frame's difference does not carry into the next) and as one batch.

    Returns (largest difference per output over the frames within tolerance, code flips: frames beyond it whose
    features lie within FLIP_MARGIN steps of a rounding boundary, failures: the other frames beyond it).
    """
    _, names = graph_names(net)
    diffs, flips, failures = dict.fromkeys(names, 0.0), [], []

    def check(x: torch.Tensor, state, where: str) -> RecurrentState | None:
        with torch.no_grad(), exact_float32():
            expected = net(x, state)
        got = session(x, state)
        per_frame = {name: (a - b).abs().flatten(1).max(dim=1).values if a.dim() > 1 else (a - b).abs()
                     for name, a, b in zip(names, flatten(expected), flatten(got), strict=True)}  # fmt: skip
        margins = code_margin(net, x)
        for i in range(x.shape[0]):
            frame = {name: float(d[i]) for name, d in per_frame.items()}
            worst = max(frame, key=frame.get)
            if frame[worst] <= tolerance:  # NaN is not
                diffs.update({name: max(diffs[name], value) for name, value in frame.items()})
                continue
            row = {"frame": f"{where} {i}", "output": worst, "diff": frame[worst], "margin": float(margins[i])}
            (flips if row["margin"] < FLIP_MARGIN else failures).append(row)
        return expected.state

    state = None
    for index, frame in enumerate(frames):
        state = check(frame[None], state, f"alone {index}:")
    check(frames, None, "batch")
    return diffs, flips, failures


def export_checkpoint(checkpoint: str | Path, out: str | Path | None = None, frames: int = 16,
                      tolerance: float = TOLERANCE, opset: int = OPSET) -> Path:  # fmt: skip
    """Write and verify <name>.onnx and its sidecar; returns the ONNX path. Refused exports leave nothing."""
    if frames < 1 or not tolerance > 0:
        raise ConfigError(f"frames must be >= 1 and tolerance > 0 (got {frames}, {tolerance})")
    weights, sidecar = checkpoint_paths(checkpoint)
    net, info = load_checkpoint(checkpoint, "cpu")
    onnx, onnx_sidecar = onnx_paths(out) if out is not None else onnx_paths(checkpoint)
    with temp_beside(onnx) as tmp:
        write_onnx(net, tmp, opset)
        session = OnnxRuntimeNet(tmp, torch.device("cpu"), recurrent=info.model.recurrent)
        diffs, flips, failures = compare(net, session, verification_frames(net, info.preprocessing, frames), tolerance)
        if failures or len(flips) > frames // 4:
            worst = max(failures or flips, key=lambda row: row["diff"])
            raise ExportError(f"{weights}: ONNX Runtime's {worst['output']} differs from torch's by "
                              f"{worst['diff']:.3g} (> {tolerance:g}) in {len(failures) + len(flips)} of "
                              f"{2 * frames} frame checks ({len(flips)} at a quantizer rounding boundary): export "
                              f"refused, nothing written")  # fmt: skip
        meta = parse_sidecar(current_sidecar(weights, sidecar, info.sha256))[1]
        inputs, outputs = graph_names(net)
        meta.update(weights=onnx.name, weights_sha256=file_sha256(tmp), onnx={
            "source": weights.name, "source_sha256": meta["weights_sha256"], "opset": opset, "inputs": inputs,
            "outputs": outputs, "verified_frames": frames, "tolerance": tolerance, "max_abs_diff": diffs,
            "code_flips": flips,
            "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__})  # fmt: skip
        commit_pair(tmp, onnx, onnx_sidecar, meta)
    return onnx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="<name>.safetensors (its <name>.json beside it)")
    parser.add_argument("--out", help="the .onnx to write (default: <name>.onnx beside the checkpoint)")
    parser.add_argument("--frames", type=int, default=16, help="verification frames")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="largest |torch - onnxruntime| allowed")
    parser.add_argument("--opset", type=int, default=OPSET)
    args = parser.parse_args(argv)
    try:
        onnx = export_checkpoint(args.checkpoint, args.out, args.frames, args.tolerance, args.opset)
    except (CheckpointError, ConfigError, ExportError) as error:
        print(f"qattn_export: {error}", file=sys.stderr)
        return 1
    verified = parse_sidecar(onnx_paths(onnx)[1])[1]["onnx"]
    moved = ", ".join(f"{flip['diff']:.2g}" for flip in verified["code_flips"])
    flips = f"; moved by a quantizer code at a rounding boundary: {moved}" if moved else ""
    print(f"wrote {onnx} (+ {onnx.name}.json); largest |torch - onnxruntime|: "
          + ", ".join(f"{name} {value:.2g}" for name, value in verified["max_abs_diff"].items()) + flips)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
