import math

import pytest
import torch

from qattn_ros.core.errors import ConfigError
from qattn_ros.model import VARIANTS, ModelConfig, SteeringNet
from qattn_ros.model.attention import doubly_stochastic_penalty, entropy_penalty


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("recurrent", [False, True])
def test_gradients_reach_the_encoder(variant: str, recurrent: bool) -> None:
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant=variant, recurrent=recurrent)).train()
    images = torch.randn(3, 2, 3, 80, 160)
    state, total = None, 0
    for t in range(images.shape[0]):
        out = model(images[t], state)
        state = out.state
        total = total + out.steering.sum()
        if variant == "pilotnet":
            assert out.attention is None
        else:
            assert out.attention.shape == (2, 10, 20)
            assert torch.allclose(out.attention.sum(dim=(1, 2)), torch.ones(2), atol=1e-5)
    total.backward()
    first_conv = model.encoder.layers[0].weight.grad
    assert first_conv is not None and first_conv.abs().sum() > 0


def _hand_quantized(x: torch.Tensor, step: float, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sign term S, rest R) of two's-complement b-bit codes, written out from the definition."""
    if bits == 1:
        return step * torch.where(x >= 0, 1.0, -1.0), torch.zeros_like(x)
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    code = torch.clamp(torch.round(x / step), low, high)
    sign_bit = (code < 0).float()
    sign = -step * sign_bit * 2 ** (bits - 1)
    return sign, step * code - sign


def _hand_attention(model: SteeringNet, z: torch.Tensor) -> torch.Tensor:
    """alpha = softmax_i(w^T ReLU(W z_i + c)), from the layer weights."""
    attention = model.attention
    hidden = torch.relu(z @ attention.feature_proj.weight.T + attention.feature_proj.bias)
    return torch.softmax((hidden @ attention.score.weight.T).squeeze(-1), dim=1)


def _hand_steering(model: SteeringNet, y: torch.Tensor) -> torch.Tensor:
    return model.head(y.flatten(1)).squeeze(-1) * model.target_std + model.target_mean


@pytest.mark.parametrize("variant, bits", [("kim_canny", 2), ("quant_all", 2), ("quant_sign", 2), ("quant_sign", 3),
                                           ("binary_sign", 1)])  # fmt: skip
def test_forward_equals_the_hand_built_context(variant: str, bits: int) -> None:
    """y = L·α·x (kim_canny), L·α·Q(x) (quant_all, binary_sign), L·α·S + R (quant_sign), on small tensors."""
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant=variant, bits=bits, head_dropout=0.0)).eval()
    model.head = torch.nn.Linear(200 * 64, 1)  # a linear read-out: every context entry moves the output
    model.target_mean.fill_(0.2)
    model.target_std.fill_(0.5)
    x = torch.randn(2, 3, 80, 160)
    with torch.no_grad():
        model.calibrate(x)
        logits = torch.log(model(x).attention.flatten(1))
        model.attention.score.weight.mul_(3 / logits.std())  # peaked attention, far from the identity
        features = model.encoder(x).flatten(2).transpose(1, 2)  # (B, L, 64), row-major positions
        if variant == "kim_canny":
            gated, ungated = features, torch.zeros_like(features)
        else:
            sign, rest = _hand_quantized(features, float(model.quantizer.step.abs()) + 1e-8, bits)
            gated, ungated = (sign, rest) if variant == "quant_sign" else (sign + rest, torch.zeros_like(rest))
        alpha = _hand_attention(model, gated + ungated)
        expected = _hand_steering(model, 200 * alpha.unsqueeze(-1) * gated + ungated)
        out = model(x)
    assert alpha.max() > 10 / 200 and abs(float(out.steering[0] - out.steering[1])) > 1e-3, "a test that can fail"
    assert torch.allclose(out.steering, expected, atol=1e-5)
    assert torch.allclose(out.attention.flatten(1), alpha, atol=1e-6)
    if variant == "quant_sign":  # the rest bypasses the attention: gating all of it is another network
        gated_all = _hand_steering(model, 200 * alpha.unsqueeze(-1) * (gated + ungated))
        assert not torch.allclose(out.steering, gated_all, atol=1e-4)
        assert (gated <= 0).all() and (ungated >= 0).all() and (gated < 0).any() and (ungated > 0).any()


@pytest.mark.parametrize("variant", ["kim_canny", "quant_all", "quant_sign", "binary_sign"])
def test_uniform_attention_is_the_identity(variant: str) -> None:
    """All logits equal -> alpha = 1/L -> L·alpha = 1: the head sees the (quantized) features unchanged."""
    torch.manual_seed(1)
    model = SteeringNet(ModelConfig(variant=variant, head_dropout=0.0)).eval()
    model.head = torch.nn.Linear(200 * 64, 1)
    for p in model.attention.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(2, 3, 80, 160)
    with torch.no_grad():
        model.calibrate(x)
        features = model.encoder(x).flatten(2).transpose(1, 2)
        if variant == "kim_canny":
            seen = features
        else:
            bits = 1 if variant == "binary_sign" else 2
            sign, rest = _hand_quantized(features, float(model.quantizer.step.abs()) + 1e-8, bits)
            seen = sign + rest
        out = model(x)
    assert torch.allclose(out.attention, torch.full((2, 10, 20), 1 / 200))
    assert torch.allclose(out.steering, _hand_steering(model, seen), atol=1e-5)


def test_rest_dropout_drops_whole_positions_in_training_only() -> None:
    torch.manual_seed(2)
    model = SteeringNet(ModelConfig(variant="quant_sign", rest_dropout=0.5))
    x = torch.randn(2, 3, 80, 160)
    model.calibrate(x)
    features = model.features(x).detach()
    model.quantizer.step.requires_grad_(False)
    model.train()
    _, rest = model._split(features)
    kept = rest.abs().sum(-1) > 0
    _, full = _hand_quantized(features, float(model.quantizer.step.abs()) + 1e-8, 2)
    has_rest = full.abs().sum(-1) > 0
    dropped_share = 1 - kept[has_rest].float().mean()
    assert 0.4 < dropped_share < 0.6, "about half of the positions lose their rest"
    assert torch.allclose(rest[kept], 2 * full[kept], atol=1e-5), "the kept rest is scaled by 1 / (1 - p)"
    model.eval()
    assert torch.allclose(model._split(features)[1], full, atol=1e-6), "no dropout at inference"


@pytest.mark.parametrize(
    "settings, key",
    [({"variant": "transformer"}, "model.variant"), ({"bits": 9}, "model.bits"), ({"colour": "rgb"}, "colour")],
)
def test_bad_model_config_names_the_key(settings: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        ModelConfig.from_dict(settings)


def test_attention_penalties_known_values() -> None:
    uniform = torch.full((2, 200), 1 / 200)
    one_hot = torch.zeros(2, 200)
    one_hot[:, 7] = 1.0
    assert float(entropy_penalty(uniform)) == pytest.approx(math.log(200), rel=1e-6)
    assert float(entropy_penalty(one_hot)) == pytest.approx(0.0, abs=1e-9)
    # Kim & Canny: sum_i (T/L - sum_t alpha_t,i)^2; zero when every position gets T/L over the sequence
    assert float(doubly_stochastic_penalty(uniform.view(2, 1, 200).expand(2, 3, 200))) == pytest.approx(0.0, abs=1e-9)
    same_spot = one_hot.view(2, 1, 200).expand(2, 3, 200)  # 3 steps all on position 7: (3/200 - 3)^2 + 199 (3/200)^2
    expected = (3 / 200 - 3) ** 2 + 199 * (3 / 200) ** 2
    assert float(doubly_stochastic_penalty(same_spot)) == pytest.approx(expected, rel=1e-6)
