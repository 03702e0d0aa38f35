import math

import pytest
import torch

from qattn_ros.model.quantizer import SignedLSQ, code_range

# bits = 3, step 0.5: codes -4..3. x / step and the code written out by hand.
X = [-3.0, -1.1, -0.3, -0.2, 0.2, 0.3, 1.26, 1.6, 5.0]  # x/step: -6, -2.2, -0.6, -0.4, 0.4, 0.6, 2.52, 3.2, 10
CODES = [-4, -2, -1, 0, 0, 1, 3, 3, 3]
SIGN = [-2.0, -2.0, -2.0, 0, 0, 0, 0, 0, 0]  # -step * 4 where the code is negative
REST = [0.0, 1.0, 1.5, 0, 0, 0.5, 1.5, 1.5, 1.5]  # step * code - sign
INSIDE = [0, 1, 1, 1, 1, 1, 1, 0, 0]  # qn <= x/step <= qp: the straight-through gradient passes


def _quantizer(bits: int, step: float) -> SignedLSQ:
    quantizer = SignedLSQ(bits)
    quantizer.calibrate(torch.ones(4))
    quantizer.step.data.fill_(step)
    return quantizer


def test_known_codes_sign_terms_and_rests() -> None:
    q = _quantizer(3, 0.5)(torch.tensor(X))
    assert torch.allclose(q.value, 0.5 * torch.tensor(CODES, dtype=torch.float32), atol=1e-6)
    assert torch.allclose(q.sign, torch.tensor(SIGN), atol=1e-6)
    assert torch.allclose(q.rest, torch.tensor(REST), atol=1e-6)


def test_binarization_is_the_step_times_the_sign() -> None:
    q = _quantizer(1, 0.7)(torch.tensor([-2.0, -0.1, 0.0, 0.1, 3.0]))
    assert torch.allclose(q.value, torch.tensor([-0.7, -0.7, 0.7, 0.7, 0.7]))
    assert torch.equal(q.sign, q.value) and torch.equal(q.rest, torch.zeros(5))


def test_lsq_gradients_have_their_known_values() -> None:
    """Esser et al.: dq/dx = 1 inside the range, 0 outside; dq/ds = round(v) - v inside, qn or qp outside,
    scaled by g = 1 / sqrt(N * Qp)."""
    quantizer = _quantizer(3, 0.5)
    x = torch.tensor(X, requires_grad=True)
    quantizer(x).value.sum().backward()
    assert torch.allclose(x.grad, torch.tensor(INSIDE, dtype=torch.float32))
    per_element = [-4, -2 + 2.2, -1 + 0.6, 0 + 0.4, 0 - 0.4, 1 - 0.6, 3 - 2.52, 3, 3]
    expected = sum(per_element) / math.sqrt(len(X) * 3)
    assert float(quantizer.step.grad) == pytest.approx(expected, rel=1e-5)


def test_the_sign_term_takes_half_of_the_straight_through_gradient() -> None:
    quantizer = _quantizer(3, 0.5)
    x = torch.tensor(X, requires_grad=True)
    quantizer(x).sign.sum().backward()
    assert torch.allclose(x.grad, 0.5 * torch.tensor(INSIDE, dtype=torch.float32))
    x.grad = None
    quantizer(x).rest.sum().backward()
    assert torch.allclose(x.grad, 0.5 * torch.tensor(INSIDE, dtype=torch.float32))


def test_binary_gradients_have_their_known_values() -> None:
    quantizer = _quantizer(1, 0.5)
    x = torch.tensor([-2.0, -0.25, 0.25, 0.4, 1.0], requires_grad=True)  # x/step: -4, -0.5, 0.5, 0.8, 2
    quantizer(x).value.sum().backward()
    assert torch.allclose(x.grad, torch.tensor([0.0, 1, 1, 1, 0]))
    per_element = [-1, -1 + 0.5, 1 - 0.5, 1 - 0.8, 1]  # sign(v) - v inside |v| <= 1, sign(v) outside
    assert float(quantizer.step.grad) == pytest.approx(sum(per_element) / math.sqrt(5), rel=1e-5)


@pytest.mark.parametrize("bits", range(1, 9))
def test_codes_stay_in_range(bits: int) -> None:
    q = _quantizer(bits, 0.25)(torch.linspace(-100, 100, 20001))
    codes = q.value / 0.25
    qn, qp = code_range(bits)
    assert torch.equal(codes, codes.round()), "values are integer multiples of the step"
    assert codes.min().item() == qn and codes.max().item() == qp


def test_calibration_sets_lsqs_initial_step() -> None:
    quantizer = SignedLSQ(3)
    quantizer.calibrate(torch.tensor([1.0, -3.0, 2.0, -2.0]))  # <|x|> = 2, Qp = 3
    assert float(quantizer.step.detach()) == pytest.approx(2 * 2 / math.sqrt(3))


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


@pytest.mark.parametrize("bits", [0, 9, -1])
def test_bit_width_out_of_range_is_refused(bits: int) -> None:
    with pytest.raises(ValueError, match="bits must be in 1..8"):
        SignedLSQ(bits)
