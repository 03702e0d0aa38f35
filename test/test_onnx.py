"""ONNX export and the onnxruntime backend: same outputs as torch, or refused with a reason."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from conftest import small_train_overrides
from processes import finish
from ros_harness import start_process

from qattn_ros.core.errors import CheckpointError, ConfigError
from qattn_ros.core.preprocess import Preprocessing
from qattn_ros.data.simlog import write_simlog
from qattn_ros.data.synthetic import RoadGenerator
from qattn_ros.data.writers import write_udacity_bag
from qattn_ros.explain.engine import read_results
from qattn_ros.fit.config import load_train_config
from qattn_ros.fit.trainer import Trainer
from qattn_ros.inference import export
from qattn_ros.inference.backends import CPU, CUDA, TENSORRT, OnnxRuntimeNet, onnx_paths, providers_for
from qattn_ros.inference.predictor import SteeringPredictor
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, read_info, save_checkpoint
from qattn_ros.ros.dds_domain import claim_domain_id

NODE = "qattn_ros.ros.steering_node"
TOLERANCE = 1e-5
REPLAY_FRAMES = 24


def _checkpoint(path: Path, seed: int = 0, **config) -> str:
    torch.manual_seed(seed)
    model = SteeringNet(ModelConfig(**config)).eval()
    model.calibrate(torch.randn(8, 3, 80, 160))
    info = CheckpointInfo(model.config, Preprocessing(), "steering_wheel_rad", True)
    return str(save_checkpoint(path, model, info))


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("logs")
    write_simlog(root / "train", RoadGenerator(160, 320, seed=11), 160)
    write_simlog(root / "val", RoadGenerator(160, 320, seed=12), 32)
    return {"train": root / "train", "val": root / "val", "cache": root / "cache"}


def _train(logs: dict[str, Path], out: Path, *overrides: str) -> str:
    """A quant_sign model trained for a few steps on the small synthetic set: it steers frame by frame."""
    base = small_train_overrides(logs, out, logs["cache"]) + [
        "model.variant=quant_sign", "model.head_dropout=0.0", "optim.lr=0.002", "optim.epochs=4",
        "optim.max_steps_per_epoch=10", "optim.batch_size=16",
    ]  # fmt: skip
    return str(Trainer(load_train_config(None, [*base, *overrides])).fit())


@pytest.fixture(scope="module")
def exported(logs, tmp_path_factory) -> str:
    """A trained quant_sign checkpoint with its <name>.onnx beside it, written by the qattn_export command."""
    checkpoint = _train(logs, tmp_path_factory.mktemp("quant_sign"))
    done = subprocess.run(
        [sys.executable, "-m", "qattn_ros.inference.export", checkpoint], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "best.onnx" in done.stdout
    return checkpoint


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> str:
    """An untrained quant_sign checkpoint and its export: enough where only files and refusals matter."""
    checkpoint = _checkpoint(tmp_path_factory.mktemp("untrained") / "model", variant="quant_sign")
    export.export_checkpoint(checkpoint)
    return checkpoint


@pytest.fixture(scope="module")
def recurrent(logs, tmp_path_factory) -> str:
    """A recurrent quant_sign model trained on sequences of 3 frames, exported by export_checkpoint."""
    checkpoint = _train(logs, tmp_path_factory.mktemp("recurrent"), "model.recurrent=true", "optim.seq_len=3")
    export.export_checkpoint(checkpoint)
    return checkpoint


def _camera_frames(count: int, seed: int = 5) -> list[np.ndarray]:
    generator = RoadGenerator(480, 640, seed=seed)
    return [generator.frame(i).image for i in range(count)]


def test_export_keeps_the_checkpoint_contract_and_the_outputs(exported) -> None:
    path, sidecar = onnx_paths(exported)
    source, meta = json.loads(Path(exported).with_suffix(".json").read_text()), json.loads(sidecar.read_text())
    for key in ("model", "preprocessing", "steering_unit", "positive_is_left", "vehicle", "format"):
        assert meta[key] == source[key], key
    assert meta["weights"] == "best.onnx" and meta["onnx"]["source_sha256"] == source["weights_sha256"]
    assert meta["onnx"]["opset"] == 17 and max(meta["onnx"]["max_abs_diff"].values()) <= TOLERANCE
    assert read_info(path).preprocessing == read_info(exported).preprocessing
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["image"] and [o.name for o in graph.output] == ["steering", "attention"]
    onnx.checker.check_model(str(path))

    torch_predictor = SteeringPredictor(exported, "cpu")
    ort_predictor = SteeringPredictor(path, "cpu", "onnxruntime")  # the .onnx itself, as a deployment ships it
    assert isinstance(ort_predictor.model, OnnxRuntimeNet) and ort_predictor.model.providers[0] == CPU
    frames = _camera_frames(12)
    steering = []
    for frame in frames:
        a, b = torch_predictor.predict(frame), ort_predictor.predict(frame)
        assert abs(a.steering - b.steering) <= TOLERANCE and abs(a.wheel_angle - b.wheel_angle) <= TOLERANCE
        assert np.abs(a.attention - b.attention).max() <= TOLERANCE
        steering.append(b.steering)
    assert np.std(steering) > 1e-4, "the frames steer differently: a constant would pass by accident"
    batch = np.stack([torch_predictor.preprocessing.to_model_uint8(f) for f in frames])
    (s_torch, a_torch), (s_ort, a_ort) = torch_predictor.predict_batch(batch), ort_predictor.predict_batch(batch)
    assert np.abs(s_torch - s_ort).max() <= TOLERANCE and np.abs(a_torch - a_ort).max() <= TOLERANCE


def test_a_replaced_or_stale_export_is_refused(untrained, tmp_path) -> None:
    for name in ("model.safetensors", "model.json", "model.onnx", "model.onnx.json"):
        (tmp_path / name).write_bytes((Path(untrained).parent / name).read_bytes())
    checkpoint = tmp_path / "model.safetensors"
    onnx_file = tmp_path / "model.onnx"
    data = onnx_file.read_bytes()
    onnx_file.write_bytes(data[:-8] + bytes(8))
    with pytest.raises(CheckpointError, match="SHA-256 does not match model.onnx.json"):
        SteeringPredictor(checkpoint, "cpu", "onnxruntime")
    onnx_file.write_bytes(data)
    _checkpoint(tmp_path / "model", seed=1, variant="quant_sign")  # retrained: the export is of the old weights
    with pytest.raises(CheckpointError, match="exported from other weights.*qattn_export"):
        SteeringPredictor(checkpoint, "cpu", "onnxruntime")
    onnx_file.unlink()
    with pytest.raises(CheckpointError, match="no model.onnx beside .*qattn_export"):
        SteeringPredictor(checkpoint, "cpu", "onnxruntime")
    with pytest.raises(ConfigError, match="backend='tflite'"):
        SteeringPredictor(checkpoint, "cpu", "tflite")


def test_an_export_that_differs_from_torch_is_refused_and_leaves_nothing(tmp_path, monkeypatch, capsys) -> None:
    """The written graph is one of slightly other weights (as a wrong export would be): verification catches it."""
    checkpoint = _checkpoint(tmp_path / "model", variant="quant_sign")
    write = export.write_onnx

    def write_perturbed(net: SteeringNet, path: Path, opset: int = export.OPSET) -> None:
        other = SteeringNet(net.config).eval()
        other.load_state_dict(net.state_dict())
        with torch.no_grad():
            other.head[-1].bias += 1e-3
        write(other, path, opset)

    monkeypatch.setattr(export, "write_onnx", write_perturbed)
    assert export.main([checkpoint]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("qattn_export: ") and "steering differs from torch's by 0.001" in error
    assert "(> 1e-05)" in error and "export refused" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]


def test_a_recurrent_model_exports_its_state_as_inputs_and_outputs(recurrent) -> None:
    path, sidecar = onnx_paths(recurrent)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["image", "h", "c"]
    assert [o.name for o in graph.output] == ["steering", "attention", "h_out", "c_out"]
    assert set(json.loads(sidecar.read_text())["onnx"]["max_abs_diff"]) == {"steering", "attention", "h_out", "c_out"}
    torch_predictor = SteeringPredictor(recurrent, "cpu")
    ort_predictor = SteeringPredictor(recurrent, "cpu", "onnxruntime")
    frames = _camera_frames(8)
    for frame in frames:  # a sequence: each predictor carries its own state from frame to frame
        a, b = torch_predictor.predict(frame), ort_predictor.predict(frame)
        assert abs(a.steering - b.steering) <= TOLERANCE
        for x, y in zip(torch_predictor.state, ort_predictor.state, strict=True):
            assert (x - y).abs().max() <= TOLERANCE
    carried = ort_predictor.predict(frames[0]).steering
    ort_predictor.reset()
    fresh = ort_predictor.predict(frames[0]).steering
    torch_predictor.reset()
    assert fresh == pytest.approx(torch_predictor.predict(frames[0]).steering, abs=TOLERANCE)
    assert abs(carried - fresh) > TOLERANCE, "the state fed back in moves the prediction by more than the tolerance"


def test_an_absent_execution_provider_is_refused_never_replaced_by_the_cpu(untrained) -> None:
    available = onnxruntime.get_available_providers()
    with pytest.raises(ConfigError, match=f"{CUDA} not installed.*refusing rather than running on the CPU"):
        providers_for("onnxruntime", torch.device("cuda:0"), [CPU])
    with pytest.raises(ConfigError, match=f"{TENSORRT}, {CUDA} not installed"):
        providers_for("onnxruntime:tensorrt", torch.device("cuda:1"), [CPU])
    with pytest.raises(ConfigError, match="runs on a GPU"):
        SteeringPredictor(untrained, "cpu", "onnxruntime:tensorrt")
    if CUDA in available:
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(ConfigError, match=f"{CUDA} not installed"):  # this machine's real onnxruntime
        OnnxRuntimeNet(onnx_paths(untrained)[0], torch.device("cuda:0"))


def test_without_onnxruntime_torch_works_and_onnxruntime_says_how_to_install(untrained) -> None:
    script = f"""
import sys
sys.modules["onnxruntime"] = None  # as if not installed
from qattn_ros.core.errors import ConfigError
from qattn_ros.inference.predictor import SteeringPredictor
import qattn_ros.ros.steering_node
SteeringPredictor({untrained!r}, "cpu")
try:
    SteeringPredictor({untrained!r}, "cpu", "onnxruntime")
except ConfigError as error:
    print(error)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "onnxruntime package is not installed (pip install onnxruntime" in done.stdout


@pytest.mark.parametrize(
    "backend, needle",
    [
        ("onnxruntime:tensorrt", "backend onnxruntime:tensorrt runs on a GPU"),
        ("tensorflow", "parameter backend='tensorflow': expected one of torch, onnxruntime, onnxruntime:tensorrt"),
    ],
)
def test_the_node_refuses_a_backend_it_cannot_run(untrained, backend, needle) -> None:
    process = start_process(NODE, {"checkpoint": untrained, "device": "cpu", "backend": backend}, claim_domain_id())
    output = finish(process, 120)
    assert process.returncode == 1, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("qattn_steering: ") and needle in last, last
    assert "Traceback" not in output


def _replay(source: str, checkpoint: str, out: Path, backend: str) -> dict[int, dict]:
    env = {**os.environ, "ROS_DOMAIN_ID": str(claim_domain_id())}
    command = [sys.executable, "-m", "qattn_ros.ros.replay", source, "--checkpoint", checkpoint, "--out", str(out),
               "--device", "cpu", "--steps", "10", "--no-record", "--backend", backend]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"backend={backend})" in done.stderr, "the node says which backend it runs"
    summary = json.loads((out / "replay.json").read_text())
    assert summary["complete"] and summary["counts"]["evaluated"] == REPLAY_FRAMES
    assert summary["counts"]["steering_mismatch"] == 0, "the node's steering is the evaluator's torch model's"
    return {(method, row["frame"]): row for method in ("attention", "random")
            for row in read_results(out / "node" / f"{method}.jsonl")}  # fmt: skip


def test_replay_with_onnxruntime_gives_the_torch_report(exported, tmp_path) -> None:
    bag = str(write_udacity_bag(tmp_path / "HMB_1.bag", RoadGenerator(160, 320, seed=11), REPLAY_FRAMES))
    with_torch = _replay(bag, exported, tmp_path / "torch", "torch")
    with_ort = _replay(bag, exported, tmp_path / "onnxruntime", "onnxruntime")
    assert sorted(with_torch) == sorted(with_ort) and len(with_torch) == 2 * REPLAY_FRAMES
    for key, row in with_torch.items():
        for name, value in row.items():
            if isinstance(value, float):
                assert with_ort[key][name] == pytest.approx(value, abs=TOLERANCE), (key, name)
    aucs = [row["deletion_auc"] for (method, _), row in with_torch.items() if method == "attention"]
    assert np.std(aucs) > 0, "the frames explain differently: a constant would pass by accident"


@pytest.mark.parametrize("seed", range(8))
def test_table_normalization_is_normalize_to_the_last_bit(seed) -> None:
    """The node's hot path (one cv2.LUT pass) gives exactly the floats training normalized with."""
    rng = np.random.default_rng(seed)
    preprocessing = Preprocessing(mean=rng.uniform(0, 1, 3).tolist(), std=rng.uniform(1e-3, 4, 3).tolist())
    images = rng.integers(0, 256, (1 + seed % 3, 80, 160, 3), dtype=np.uint8)
    images[0, 0, :3, :] = [[0, 0, 0], [255, 255, 255], [127, 128, 1]]  # the ends of the table
    assert torch.equal(preprocessing.normalize_frames(images), preprocessing.normalize(torch.from_numpy(images)))


def test_code_margin_finds_a_feature_on_a_rounding_boundary(tmp_path) -> None:
    """What lets an export through when one frame moves by a whole quantizer code: torch's own features sit
    within FLIP_MARGIN of a rounding boundary there; anywhere else a difference refuses the export."""
    torch.manual_seed(0)
    net = SteeringNet(ModelConfig(variant="quant_sign", bits=2)).eval()
    x = torch.randn(3, 3, 80, 160)
    net.calibrate(x)
    with torch.no_grad():
        feature = float(net.features(x)[1].abs().max())
        net.quantizer.step.fill_(feature / 0.5)  # frame 1's largest |feature| now lies on the 0 | ±1 boundary
    margins = export.code_margin(net, x)
    assert margins[1] < export.FLIP_MARGIN <= margins.max()
    assert torch.isinf(export.code_margin(SteeringNet(ModelConfig(variant="kim_canny")).eval(), x)).all()
