import json
import pickle

import pytest
import torch

from qattn_ros.core.errors import CheckpointError
from qattn_ros.core.preprocess import CameraGeometry, Preprocessing
from qattn_ros.core.units import DEFAULT_VEHICLE, VehicleGeometry
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, checkpoint_paths, load_checkpoint, save_checkpoint


def _saved(tmp_path, variant="quant_sign"):
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant=variant)).eval()
    model.calibrate(torch.randn(4, 3, 80, 160))
    model.target_mean.fill_(0.1)
    model.target_std.fill_(0.3)
    info = CheckpointInfo(
        model=model.config,
        preprocessing=Preprocessing(color="hsv", crop_top=0.25, mean=[0.1, 0.2, 0.3]),
        steering_unit="steering_wheel_rad",
        positive_is_left=True,
        vehicle=VehicleGeometry(steering_ratio=16.0, wheelbase=2.7),
        camera=CameraGeometry(640, 480),
        metrics={"rmse": 0.01},
    )
    save_checkpoint(tmp_path / "ckpt", model, info)
    return model


@pytest.mark.parametrize("variant", ["kim_canny", "quant_sign", "binary_sign"])
def test_round_trip_gives_identical_outputs(tmp_path, variant) -> None:
    model = _saved(tmp_path, variant)
    loaded, info = load_checkpoint(tmp_path / "ckpt.safetensors")
    x = torch.randn(3, 3, 80, 160)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.steering, b.steering)
    if a.attention is not None:
        assert torch.equal(a.attention, b.attention)
    assert info.steering_unit == "steering_wheel_rad" and info.positive_is_left is True
    assert info.model == model.config and info.metrics == {"rmse": 0.01}
    assert info.preprocessing == Preprocessing(color="hsv", crop_top=0.25, mean=[0.1, 0.2, 0.3])
    assert info.vehicle == VehicleGeometry(steering_ratio=16.0, wheelbase=2.7) and info.notes == []
    assert info.camera == CameraGeometry(640, 480)


def test_a_format_1_checkpoint_loads_with_the_default_geometry_and_says_so(tmp_path) -> None:
    model = _saved(tmp_path)
    _, sidecar = checkpoint_paths(tmp_path / "ckpt")
    meta = json.loads(sidecar.read_text())
    meta["format"] = "qattn_ros.checkpoint/1"
    del meta["vehicle"]
    sidecar.write_text(json.dumps(meta))
    loaded, info = load_checkpoint(tmp_path / "ckpt")
    assert info.vehicle == DEFAULT_VEHICLE
    assert len(info.notes) == 1 and "qattn_ros.checkpoint/1" in info.notes[0] and "steering_ratio=14.8" in info.notes[0]
    x = torch.randn(2, 3, 80, 160)
    with torch.no_grad():
        assert torch.equal(loaded(x).steering, model(x).steering)
    meta["format"] = "qattn_ros.checkpoint/2"  # the current format must carry its geometry
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="missing key.*vehicle"):
        load_checkpoint(tmp_path / "ckpt")


def test_a_bad_preprocessing_or_unit_in_the_sidecar_is_refused_naming_it(tmp_path) -> None:
    _saved(tmp_path)
    _, sidecar = checkpoint_paths(tmp_path / "ckpt")
    meta = json.loads(sidecar.read_text())
    for key, value, message in [
        ("preprocessing", {**meta["preprocessing"], "color": "lab"}, "preprocessing.color: unknown colour space 'lab'"),
        ("steering_unit", "degrees", "steering_unit: unknown unit 'degrees'"),
        ("vehicle", {"steering_ratio": 0.0, "wheelbase": 2.85}, "vehicle.steering_ratio: must be a positive"),
    ]:
        sidecar.write_text(json.dumps({**meta, key: value}))
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(tmp_path / "ckpt")


def test_corrupted_weights_are_refused_before_parsing(tmp_path) -> None:
    _saved(tmp_path)
    weights, _ = checkpoint_paths(tmp_path / "ckpt")
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256 does not match"):
        load_checkpoint(tmp_path / "ckpt")


def test_a_pickle_in_place_of_the_weights_never_runs(tmp_path) -> None:
    _saved(tmp_path)
    weights, sidecar = checkpoint_paths(tmp_path / "ckpt")

    class Exploit:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    weights.write_bytes(pickle.dumps(Exploit()))
    meta = json.loads(sidecar.read_text())
    import hashlib

    meta["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()  # an attacker can fix the hash
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unreadable safetensors"):
        load_checkpoint(tmp_path / "ckpt")
    assert not (tmp_path / "pwned").exists()


def test_config_that_does_not_match_the_weights_is_named(tmp_path) -> None:
    _saved(tmp_path, "quant_sign")
    _, sidecar = checkpoint_paths(tmp_path / "ckpt")
    meta = json.loads(sidecar.read_text())
    meta["model"]["variant"] = "kim_canny"
    sidecar.write_text(json.dumps(meta))
    expected = r"variant=kim_canny.*unexpected \['quantizer.initialized', 'quantizer.step'\]"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(tmp_path / "ckpt")
    meta["model"]["variant"] = "quant_sign"
    meta["model"]["attention_dim"] = 32
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="attention.feature_proj.weight"):
        load_checkpoint(tmp_path / "ckpt")


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "not valid JSON"), ('{"format": "other"}', "not a qattn_ros.checkpoint/2"), (None, "not found")],
)
def test_bad_sidecar_is_refused(tmp_path, content, message) -> None:
    _saved(tmp_path)
    _, sidecar = checkpoint_paths(tmp_path / "ckpt")
    if content is None:
        sidecar.unlink()
    else:
        sidecar.write_text(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "ckpt")


def test_missing_checkpoint_is_named(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="nothing_here.safetensors"):
        load_checkpoint(tmp_path / "nothing_here")


def test_predictor_carries_the_recurrent_state_across_frames(tmp_path) -> None:
    import numpy as np

    from qattn_ros.core.preprocess import Preprocessing
    from qattn_ros.inference.predictor import SteeringPredictor

    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="kim_canny", recurrent=True)).eval()
    info = CheckpointInfo(model=model.config, preprocessing=Preprocessing(), steering_unit="wheel_rad",
                          positive_is_left=True)  # fmt: skip
    save_checkpoint(tmp_path / "rnn", model, info)
    predictor = SteeringPredictor(str(tmp_path / "rnn"))
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    first, second = predictor.predict(frame).steering, predictor.predict(frame).steering
    assert predictor.state is not None and first != second, "the second frame sees the first one's state"
    predictor.reset()
    assert predictor.predict(frame).steering == first
