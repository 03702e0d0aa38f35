"""The cascading-randomization sanity check and the uniform-attention intervention."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from qattn_ros.explain.intervention import uniform_attention, uniform_shift
from qattn_ros.explain.sanity import cascading_randomization, spearman
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


def _trained(config: ModelConfig) -> SteeringNet:
    """A net whose every parameter and BatchNorm statistic differs from any default initialization, as a trained
    net's do (BatchNorm's identity, a step of 1)."""
    torch.manual_seed(0)
    model = SteeringNet(config).eval()
    model.calibrate(torch.randn(8, 3, 80, 160))
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if value.is_floating_point() and not name.startswith("target_"):
                value.add_(0.1 * torch.rand_like(value) + 0.05)  # positive: a running variance stays one
    return model


def _changed_per_stage(model: SteeringNet, monkeypatch) -> tuple[list[str], list[str], list[set[str]]]:
    """(stage names, the learned tensors in forward order, per stage the tensors that differ from the trained),
    read from the models the cascade hands the saliency method, not from its stage table."""
    import qattn_ros.explain.sanity as sanity_module

    real, seen = sanity_module.saliency, []

    def recording(method, net, x, ids, seed):
        seen.append({k: v.clone() for k, v in net.state_dict().items()})
        return real(method, net, x, ids, seed)

    monkeypatch.setattr(sanity_module, "saliency", recording)
    result = cascading_randomization(model, "random", torch.randn(2, 3, 80, 160), np.arange(2))
    trained = seen[0]
    # learned: parameters and BatchNorm statistics (the target's mean and std are its unit, not a layer)
    learned = [k for k, v in trained.items() if v.is_floating_point() and not k.startswith("target_")]
    changed = [{k for k in learned if not torch.equal(stage[k], trained[k])} for stage in seen[1:]]
    return list(result.rho), learned, changed


@pytest.mark.parametrize("config", [ModelConfig(variant="quant_sign", recurrent=True), ModelConfig(variant="pilotnet")])
def test_the_cascade_randomizes_from_the_output_down_until_nothing_trained_is_left(config, monkeypatch) -> None:
    """Each stage randomizes more, always the layers nearest the output (a suffix in forward order), a convolution
    together with its BatchNorm; at the last stage every learned tensor differs from the trained one."""
    names, learned, changed = _changed_per_stage(_trained(config), monkeypatch)
    for stage, (before, after) in enumerate(zip([set()] + changed, changed)):
        assert before < after, f"stage {names[stage]} randomized nothing new"
        assert after == set(learned[len(learned) - len(after) :]), f"stage {names[stage]}: not from the output down"
    assert changed[-1] == set(learned), f"left as trained at the last stage: {set(learned) - changed[-1]}"
    first = {k: next(s for s, c in enumerate(changed) if k in c) for k in learned}  # the stage that changed it
    for number in range(1, 6):  # the encoder's (Conv2d, BatchNorm2d, ReLU) blocks, numbered from the input
        conv, norm = f"encoder.layers.{3 * number - 3}.", f"encoder.layers.{3 * number - 2}."
        stages = {names[first[k]] for k in learned if k.startswith((conv, norm))}
        assert stages == {f"conv{number}"}, (number, stages)


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
        if len(calls) >= 7:  # from the 6th stage on (the quantizer of quant_sign) the maps go flat in frame 0
            maps[0] = 0.25
        return maps

    monkeypatch.setattr(sanity_module, "saliency", flat_once_randomized)
    result = cascading_randomization(_net(), "attention", torch.randn(2, 3, 80, 160), np.arange(2))
    assert [int(result.uniform[s].sum()) for s in result.rho] == [0] * 5 + [1] * 6
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
