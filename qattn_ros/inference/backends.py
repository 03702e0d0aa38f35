"""What runs a checkpoint's network: eager torch, or ONNX Runtime on the file `qattn_export` wrote.

Both are called the same way, `net(x, state) -> SteeringOutput` on normalized (B, 3, h, w) inputs,
so `SteeringPredictor` keeps one code path for preprocessing, recurrent state and units.

  torch                 <name>.safetensors + <name>.json, on the device asked for
  onnxruntime           <name>.onnx + <name>.onnx.json beside it; the execution provider follows the
                        device: cpu -> CPU, cuda[:N] -> CUDA on GPU N
  onnxruntime:tensorrt  the same file through TensorRT on the device's GPU (CUDA runs what it cannot)

onnxruntime is an optional dependency, imported only when asked for. An execution provider
asked for and not installed is refused here, before any frame: ONNX Runtime would otherwise
fall back to the CPU with a warning, and a car would run at a fraction of the planned rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.errors import CheckpointError, ConfigError
from ..model.checkpoint import (
    CheckpointInfo,
    checkpoint_paths,
    current_sidecar,
    file_sha256,
    load_checkpoint,
    parse_sidecar,
)
from ..model.network import RecurrentState, SteeringNet, SteeringOutput

BACKENDS = ("torch", "onnxruntime", "onnxruntime:tensorrt")
# Names in the exported graph: the state goes in as h, c and comes out as h_out, c_out.
IMAGE, STATE_IN, STEERING, ATTENTION, STATE_OUT = "image", ("h", "c"), "steering", "attention", ("h_out", "c_out")
CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


def import_onnxruntime():
    """The onnxruntime module, or a clear error saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "backend onnxruntime: the onnxruntime package is not installed "
            "(pip install onnxruntime; onnxruntime-gpu for the CUDA and TensorRT providers)"
        ) from None
    return onnxruntime


def onnx_paths(checkpoint: str | Path) -> tuple[Path, Path]:
    """(<name>.onnx, <name>.onnx.json) for '<name>', '<name>.safetensors', '<name>.json' or '<name>.onnx'."""
    path = Path(checkpoint)
    if path.suffix == ".onnx":
        return path, path.with_name(path.name + ".json")
    weights, _ = checkpoint_paths(path)
    onnx = weights.with_suffix(".onnx")
    return onnx, onnx.with_name(onnx.name + ".json")


def load_network(checkpoint: str | Path, device: torch.device, backend: str = "torch"
                 ) -> tuple[SteeringNet | OnnxRuntimeNet, CheckpointInfo]:  # fmt: skip
    """The network of `checkpoint` on `backend`, with its validated sidecar."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "torch":
        if Path(checkpoint).suffix == ".onnx":
            raise ConfigError(f"{checkpoint} is an ONNX export: use backend onnxruntime, or the .safetensors")
        return load_checkpoint(checkpoint, device)
    onnx, sidecar = onnx_paths(checkpoint)
    if not onnx.is_file():
        raise CheckpointError(f"backend {backend}: no {onnx.name} beside {checkpoint}; export it with: qattn_export "
                              f"{checkpoint}")  # fmt: skip
    digest = file_sha256(onnx)
    # the same contract as the torch checkpoint: preprocessing, unit, geometry (committed as its pair is)
    info, meta = parse_sidecar(current_sidecar(onnx, sidecar, digest))
    if "onnx" not in meta:
        raise CheckpointError(f"{sidecar}: no 'onnx' section; not written by qattn_export")
    if digest != meta["weights_sha256"]:
        raise CheckpointError(f"{onnx}: SHA-256 does not match {sidecar.name}; the file is corrupt or was replaced")
    source_weights, source_sidecar = checkpoint_paths(onnx.with_suffix(""))
    if source_sidecar.is_file():  # the torch checkpoint is beside it: the export must be of these weights
        source = parse_sidecar(current_sidecar(source_weights, source_sidecar))[1]["weights_sha256"]
        if source != meta["onnx"]["source_sha256"]:
            raise CheckpointError(f"{onnx} was exported from other weights than {source_sidecar.stem}.safetensors "
                                  f"has now; export it again: qattn_export {checkpoint}")  # fmt: skip
    return OnnxRuntimeNet(onnx, device, backend, recurrent=info.model.recurrent), info


def providers_for(backend: str, device: torch.device, available: list[str]) -> list[tuple[str, dict]]:
    """ONNX Runtime execution providers (with options) for a backend on a device; absent ones refused."""
    gpu = {"device_id": device.index or 0}
    if backend == "onnxruntime:tensorrt":
        if device.type != "cuda":
            raise ConfigError(f"backend {backend} runs on a GPU: set device to cuda or cuda:N, not {device}")
        wanted = [(TENSORRT, gpu), (CUDA, gpu)]
    else:
        wanted = [(CUDA, gpu)] if device.type == "cuda" else [(CPU, {})]
    missing = [name for name, _ in wanted if name not in available]
    if missing:
        raise ConfigError(f"backend {backend} on {device}: execution provider(s) {', '.join(missing)} not installed "
                          f"(this onnxruntime has {', '.join(available)}); refusing rather than running on the "
                          f"CPU instead")  # fmt: skip
    return wanted


class OnnxRuntimeNet:
    """An exported network in an ONNX Runtime session, called like `SteeringNet` on normalized inputs."""

    def __init__(self, path: Path, device: torch.device, backend: str = "onnxruntime", recurrent: bool = False,
                 threads: int | None = None) -> None:  # fmt: skip
        ort = import_onnxruntime()
        self.device, self.recurrent = device, recurrent
        providers = providers_for(backend, device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()  # the node's cpu_threads sets both
        options.inter_op_num_threads = 1
        if providers[0][0] != CPU:  # a node the GPU providers cannot run fails here instead of moving to the CPU
            options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as error:  # onnxruntime raises its own (pybind) exception types
            raise CheckpointError(f"{path}: ONNX Runtime cannot load it with {providers[0][0]} ({error})") from None
        if self.session.get_providers()[0] != providers[0][0]:
            raise ConfigError(f"{path}: ONNX Runtime runs it on {self.session.get_providers()[0]}, not the "
                              f"{providers[0][0]} asked for")  # fmt: skip
        self.outputs = [output.name for output in self.session.get_outputs()]
        self.hidden_dim = self.session.get_inputs()[1].shape[1] if recurrent else 0

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def __call__(self, x: torch.Tensor, state: RecurrentState | None = None) -> SteeringOutput:
        feed = {IMAGE: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)}
        if self.recurrent:
            if state is None:  # a new sequence starts from zeros, as SteeringNet does
                zeros = np.zeros((x.shape[0], self.hidden_dim), np.float32)
                state = (zeros, zeros)
            for name, value in zip(STATE_IN, state):
                feed[name] = value.cpu().numpy() if isinstance(value, torch.Tensor) else value
        out = dict(zip(self.outputs, self.session.run(self.outputs, feed)))
        tensor = lambda name: torch.from_numpy(out[name]).to(self.device) if name in out else None  # noqa: E731
        state_out = (tensor(STATE_OUT[0]), tensor(STATE_OUT[1])) if self.recurrent else None
        return SteeringOutput(steering=tensor(STEERING), attention=tensor(ATTENTION), state=state_out)
