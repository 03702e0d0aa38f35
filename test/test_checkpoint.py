import json
import pickle

import pytest
import torch

from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import (
    CheckpointError,
    CheckpointInfo,
    checkpoint_paths,
    load_checkpoint,
    save_checkpoint,
)


def _saved(tmp_path, variant="quant_sign"):
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant=variant)).eval()
    model.calibrate(torch.randn(4, 3, 80, 160))
    model.target_mean.fill_(0.1)
    model.target_std.fill_(0.3)
    info = CheckpointInfo(
        model=model.config,
        preprocessing={"color": "yuv"},
        steering_unit="sim_normalized",
        positive_is_left=False,
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
    assert info.steering_unit == "sim_normalized" and info.positive_is_left is False
    assert info.model == model.config and info.metrics == {"rmse": 0.01}


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
    [("{not json", "not valid JSON"), ('{"format": "other"}', "not a qattn_ros.checkpoint/1"), (None, "not found")],
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

    from qattn_ros.inference import SteeringPredictor
    from qattn_ros.preprocess import Preprocessing

    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="kim_canny", recurrent=True)).eval()
    info = CheckpointInfo(model=model.config, preprocessing=Preprocessing().to_dict(), steering_unit="wheel_rad",
                          positive_is_left=True)  # fmt: skip
    save_checkpoint(tmp_path / "rnn", model, info)
    predictor = SteeringPredictor(str(tmp_path / "rnn"))
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    first, second = predictor.predict(frame).steering, predictor.predict(frame).steering
    assert predictor.state is not None and first != second, "the second frame sees the first one's state"
    predictor.reset()
    assert predictor.predict(frame).steering == first
