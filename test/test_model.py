import pytest
import torch

from qattn_ros.model import VARIANTS, ConfigError, ModelConfig, SteeringNet


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


def test_uniform_attention_is_the_identity_for_kim_canny() -> None:
    model = SteeringNet(ModelConfig(variant="kim_canny", head_dropout=0.0)).eval()
    for p in model.attention.parameters():
        torch.nn.init.zeros_(p)  # all logits equal -> alpha = 1/L
    reference = SteeringNet(ModelConfig(variant="pilotnet", head_dropout=0.0)).eval()
    reference.load_state_dict(model.state_dict(), strict=False)
    x = torch.randn(2, 3, 80, 160)
    assert torch.allclose(model(x).steering, reference(x).steering, atol=1e-5)


def test_quant_sign_gates_only_the_sign_term() -> None:
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="quant_sign", bits=3, head_dropout=0.0)).eval()
    x = torch.randn(2, 3, 80, 160)
    model.calibrate(x)
    features = model.features(x)
    q = model.quantizer(features)
    gated, ungated = model._split(features)
    assert torch.equal(gated, q.sign) and torch.equal(ungated, q.rest)
    assert (q.sign <= 0).all() and (q.rest >= 0).all()


@pytest.mark.parametrize(
    "settings, key",
    [({"variant": "transformer"}, "model.variant"), ({"bits": 9}, "model.bits"), ({"colour": "rgb"}, "colour")],
)
def test_bad_model_config_names_the_key(settings: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        ModelConfig.from_dict(settings)
