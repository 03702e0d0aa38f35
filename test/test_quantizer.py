import pytest
import torch

from qattn_ros.model.quantizer import SignedLSQ, code_range


@pytest.mark.parametrize("bits", range(1, 9))
def test_codes_stay_in_range_and_round_to_nearest(bits: int) -> None:
    quantizer = SignedLSQ(bits)
    quantizer.calibrate(torch.ones(4))
    step = 0.25
    quantizer.step.data.fill_(step)
    x = torch.linspace(-100, 100, 20001)
    q = quantizer(x)
    codes = q.value / step
    qn, qp = code_range(bits)
    assert torch.equal(codes, codes.round()), "values are integer multiples of the step"
    assert codes.min().item() == qn and codes.max().item() == qp
    if bits == 1:
        assert torch.equal(codes, torch.where(x >= 0, 1.0, -1.0))
    else:
        expected = (x / step).clamp(qn, qp).round()
        assert torch.equal(codes, expected)


@pytest.mark.parametrize("bits", range(2, 9))
def test_sign_term_plus_rest_is_the_twos_complement_value(bits: int) -> None:
    quantizer = SignedLSQ(bits)
    quantizer.calibrate(torch.ones(4))
    quantizer.step.data.fill_(0.37)
    x = torch.randn(5000) * 3
    q = quantizer(x)
    step = q.step.detach()
    assert torch.equal(q.sign + q.rest, q.value)
    code = (q.value / step).round().long()
    sign_bit = (code < 0).long()
    low_bits = code + sign_bit * 2 ** (bits - 1)  # the b-1 bits below the sign bit, as an unsigned number
    assert low_bits.min() >= 0 and low_bits.max() <= 2 ** (bits - 1) - 1
    assert torch.allclose(q.sign, -step * sign_bit * 2 ** (bits - 1), atol=0)
    assert torch.allclose(q.rest, step * low_bits, rtol=1e-6, atol=1e-6)
    # rebuild the code from its bits: -b_{n-1} 2^{n-1} + sum_j b_j 2^j
    bit_values = [(low_bits >> j) & 1 for j in range(bits - 1)]
    rebuilt = -sign_bit * 2 ** (bits - 1) + sum(b * 2**j for j, b in enumerate(bit_values))
    assert torch.equal(rebuilt, code)


@pytest.mark.parametrize("bits", range(1, 9))
def test_straight_through_gradient_reaches_input_and_step(bits: int) -> None:
    quantizer = SignedLSQ(bits)
    x = torch.randn(64, requires_grad=True)
    q = quantizer(x)
    (q.value * torch.randn(64)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert quantizer.step.grad is not None and quantizer.step.grad.abs() > 0


@pytest.mark.parametrize("bits", [0, 9, -1])
def test_bit_width_out_of_range_is_refused(bits: int) -> None:
    with pytest.raises(ValueError, match="bits must be in 1..8"):
        SignedLSQ(bits)
