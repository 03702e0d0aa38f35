"""The cascading-randomization sanity check and the uniform-attention intervention."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from qattn_ros.explain.intervention import uniform_attention, uniform_shift
from qattn_ros.explain.sanity import cascade, cascading_randomization, spearman
from qattn_ros.model import ModelConfig, SteeringNet


def _net(variant="quant_sign") -> SteeringNet:
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant=variant)).eval()
    model.calibrate(torch.randn(8, 3, 80, 160))
    return model


def test_spearman_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.integers(0, 5, (3, 6, 7)).astype(np.float32))  # many ties
    b = torch.from_numpy(rng.random((3, 6, 7)).astype(np.float32))
    ours = spearman(a, b)
    for row in range(3):
        assert ours[row] == pytest.approx(spearmanr(a[row].flatten(), b[row].flatten())[0], abs=1e-9)
    assert np.allclose(spearman(b, b), 1.0) and np.allclose(spearman(b, -b), -1.0)


def test_cascade_runs_from_the_output_down() -> None:
    names = [name for name, _ in cascade(_net())]
    assert names == ["head.3", "head.2", "head.1", "head.0", "attention", "conv5", "conv4", "conv3", "conv2", "conv1"]


def test_randomizing_the_layers_an_attention_map_depends_on_changes_it_and_the_head_does_not() -> None:
    model = _net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, ids = torch.randn(4, 3, 80, 160), np.arange(4)
    result = cascading_randomization(model, "attention", x, ids)
    rho = result.rho
    assert all(np.allclose(rho[f"head.{i}"], 1.0) for i in range(4)), "the attention does not read the head"
    assert not any(flags.any() for flags in result.uniform.values()), "no map of this net goes flat"
    assert np.all(rho["conv1"] < 0.9), rho["conv1"]  # all layers random: a different map
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the model itself is untouched"


def test_gradient_maps_change_as_soon_as_the_head_is_randomized() -> None:
    model = _net("kim_canny")
    rho = cascading_randomization(model, "gradcam", torch.randn(3, 3, 80, 160), np.arange(3)).rho
    assert np.all(rho["head.3"] < 0.99) and np.all(rho["conv1"] < 0.9)


def test_a_randomized_map_that_goes_flat_is_recorded_as_uniform_with_rho_0(monkeypatch) -> None:
    """A map with one value everywhere has no ranking: rho 0 by convention, and the report says it was flat."""
    import qattn_ros.explain.sanity as sanity_module

    real = sanity_module.saliency
    calls = []

    def flat_once_randomized(method, model, x, ids, seed):
        calls.append(1)
        maps = real(method, model, x, ids, seed)
        if len(calls) >= 7:  # from the 6th stage on (conv5 of quant_sign) the maps go flat in frame 0
            maps[0] = 0.25
        return maps

    monkeypatch.setattr(sanity_module, "saliency", flat_once_randomized)
    result = cascading_randomization(_net(), "attention", torch.randn(2, 3, 80, 160), np.arange(2))
    assert [int(result.uniform[s].sum()) for s in result.rho] == [0] * 5 + [1] * 5
    assert all(result.rho[s][0] == 0.0 and result.rho[s][1] != 0.0 for s in list(result.rho)[5:])


def test_uniform_attention_changes_only_the_gated_sign_term_of_quant_sign() -> None:
    model = _net()
    x = torch.randn(5, 3, 80, 160)
    with torch.no_grad():
        features = model.features(x)
        gated, ungated = model._split(features)
        expected = model.head((gated + ungated).flatten(1)).squeeze(-1) * model.target_std + model.target_mean
        with uniform_attention(model):
            out = model(x)
    assert torch.allclose(out.steering, expected, atol=1e-5)
    assert torch.allclose(out.attention, torch.full_like(out.attention, 1 / model.positions))
    assert torch.allclose(uniform_shift(model, x), (expected - model(x).steering).abs(), atol=1e-5)
    assert model(x).attention.std() > 0, "the hook is gone afterwards"


def test_an_attention_that_is_already_uniform_has_no_effect() -> None:
    model = _net("kim_canny")
    x = torch.randn(3, 3, 80, 160)
    torch.nn.init.normal_(model.attention.score.weight, std=5.0)  # a peaked attention
    peaked = uniform_shift(model, x).min()
    torch.nn.init.zeros_(model.attention.score.weight)  # equal scores: softmax is uniform
    assert uniform_shift(model, x).max() < 1e-3 * peaked


def test_a_model_without_attention_is_refused() -> None:
    with pytest.raises(ValueError, match="pilotnet"):
        uniform_shift(_net("pilotnet"), torch.randn(1, 3, 80, 160))
