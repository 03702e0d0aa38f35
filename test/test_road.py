"""ROAD (noisy linear imputation): known answers, the batched engine against its per-step loop, and
the same numbers as grad-cam's implementation (`pytorch_grad_cam.metrics.road`) on the same frames."""

import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

from qattn_ros.explain import perturbation
from qattn_ros.explain.perturbation import auc, curves, curves_loop
from qattn_ros.explain.road import linear_fill, noisy_linear_fill
from qattn_ros.explain.saliency import saliency
from qattn_ros.model import ModelConfig, SteeringNet

REGION = (slice(20, 40), slice(60, 100))


def _grad_cam_road():
    """grad-cam's ROAD module without the package __init__ (which imports torchvision for its CAMs)."""
    if "pytorch_grad_cam" not in sys.modules:
        spec = importlib.util.find_spec("pytorch_grad_cam")  # requirements-crosscheck.txt
        assert spec is not None, "grad-cam is not installed: pip install --no-deps -r requirements-crosscheck.txt"
        package = types.ModuleType("pytorch_grad_cam")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["pytorch_grad_cam"] = package
    from pytorch_grad_cam.metrics import perturbation_confidence, road

    return road, perturbation_confidence


def _net() -> SteeringNet:
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="quant_sign")).eval()
    model.calibrate(torch.randn(8, 3, 80, 160))
    return model


def test_a_hole_in_a_linear_ramp_is_filled_exactly() -> None:
    rows, cols = np.meshgrid(np.arange(40), np.arange(60), indexing="ij")
    image = np.stack([0.3 * rows - 0.1 * cols, 0.05 * cols + 1, -0.2 * rows])
    removed = np.zeros((40, 60), bool)
    removed[5:30, 10:50] = True
    filled = linear_fill(np.where(removed, 99.0, image), removed)
    assert np.allclose(filled, image, atol=1e-9)


def _filled(known: list[list[float]], removed: list[tuple[int, int]]) -> np.ndarray:
    """linear_fill of a 2-channel image (the second channel twice the first) with `removed` pixels set to 99."""
    image = np.array(known, dtype=np.float64)
    mask = np.zeros(image.shape, bool)
    for row, col in removed:
        mask[row, col] = True
    out = linear_fill(np.stack([np.where(mask, 99.0, image), np.where(mask, 99.0, 2 * image)]), mask)
    assert np.array_equal(out[:, ~mask], np.stack([image, 2 * image])[:, ~mask]), "known pixels stay"
    assert np.allclose(out[1], 2 * out[0]), "each channel on its own"
    return out[0]


def test_fills_computed_by_hand() -> None:
    """The rule: a removed pixel is the weighted mean of its in-image neighbours, 1/6 across an edge and 1/12 across
    a corner, divided by the weight of the neighbours it has; removed neighbours are unknowns of the same system."""
    # inside: the right neighbour 6 (1/6) and the lower right corner 12 (1/12), the rest 0: 1 + 1
    assert _filled([[0, 0, 0], [0, 0, 6], [0, 0, 12]], [(1, 1)])[1, 1] == pytest.approx(2.0, abs=1e-12)
    # a corner pixel has two edge neighbours and one corner neighbour: (3/6 + 6/6 + 12/12) / (5/12)
    assert _filled([[0, 3], [6, 12]], [(0, 0)])[0, 0] == pytest.approx(6.0, abs=1e-12)
    # two removed neighbours: x1 - x2/6 = 6/6 and x2 - x1/6 = 0, so x1 = 36/35 and x2 = 6/35
    two = _filled([[0, 0, 0, 0], [6, 0, 0, 0], [0, 0, 0, 0]], [(1, 1), (1, 2)])
    assert (two[1, 1], two[1, 2]) == pytest.approx((36 / 35, 6 / 35), abs=1e-12)
    # nothing known: the dataset mean, 0 after normalization
    assert np.array_equal(_filled([[5, 7], [9, 11]], [(0, 0), (0, 1), (1, 0), (1, 1)]), np.zeros((2, 2)))


def test_fill_equals_grad_cams_noisy_linear_imputer_without_noise() -> None:
    road, _ = _grad_cam_road()
    rng = np.random.default_rng(3)
    image = rng.standard_normal((3, 30, 50)).astype(np.float32)
    masks = [rng.random((30, 50)) < 0.6, np.zeros((30, 50), bool)]
    masks[1][:, :20] = True  # a block touching three borders
    for removed in masks:
        theirs = road.NoisyLinearImputer(noise=0.0)(
            torch.from_numpy(image), torch.from_numpy((~removed).astype(np.float32))
        )
        assert np.allclose(linear_fill(image, removed), theirs.numpy(), atol=1e-4)


def test_noise_is_seeded_and_only_on_the_filled_pixels() -> None:
    image = np.random.default_rng(0).standard_normal((3, 20, 20))
    removed = np.zeros((20, 20), bool)
    removed[5:10, 5:10] = True
    a = noisy_linear_fill(image, removed, np.random.default_rng(1), 0.01)
    b = noisy_linear_fill(image, removed, np.random.default_rng(1), 0.01)
    clean = linear_fill(image, removed)
    assert np.array_equal(a, b)
    assert np.array_equal(a[:, ~removed], image[:, ~removed])
    assert 0.005 < np.std(a[:, removed] - clean[:, removed]) < 0.02


@pytest.mark.parametrize("order", ["most", "least"])
def test_batched_road_equals_the_per_step_loop(order) -> None:
    model = _net()
    x = torch.randn(3, 3, 80, 160)
    ids = np.array([4, 0, 7])
    maps = saliency("attention", model, x, ids)
    predict = lambda t: model(t).steering  # noqa: E731
    batched = curves(predict, x, maps, ids, "deletion", 5, "road", batch_size=4, order=order).numpy()
    loop = curves_loop(predict, x, maps, ids, "deletion", 5, "road", order=order).numpy()
    assert np.allclose(batched, loop, atol=1e-6)
    assert np.all(batched[:, 0] == 0)


@pytest.mark.parametrize("order", ["most", "least"])
def test_road_curve_equals_grad_cams_road_on_the_same_frames(order, monkeypatch) -> None:
    road, confidence = _grad_cam_road()
    monkeypatch.setattr(perturbation, "DEFAULT_NOISE", 0.0)  # grad-cam's noise is unseeded: compare without
    model = _net()
    x = torch.randn(2, 3, 80, 160)
    ids = np.array([1, 2])
    maps = torch.rand(2, 80, 160, generator=torch.Generator().manual_seed(5))  # no ties
    ours = curves(lambda t: model(t).steering, x, maps, ids, "deletion", 10, "road", order=order).numpy()
    remove = confidence.RemoveMostRelevantFirst if order == "most" else confidence.RemoveLeastRelevantFirst
    steering = torch.nn.Sequential()
    steering.forward = lambda t: model(t).steering.unsqueeze(1)
    for k in range(1, 10):
        metric = confidence.PerturbationConfidenceMetric(remove(100 * (1 - k / 10), road.NoisyLinearImputer(noise=0.0)))
        theirs = metric(x, maps.numpy(), [lambda out: out[0]] * 2, steering)
        assert np.allclose(ours[:, k], np.abs(theirs), atol=2e-5), k


@pytest.mark.slow
def test_road_ranks_the_region_map_first_and_its_reverse_last() -> None:
    torch.manual_seed(1)
    x = torch.randn(3, 3, 80, 160) + 2.0
    ids = np.arange(3)

    def region_model(t: torch.Tensor) -> torch.Tensor:
        return t[:, :, REGION[0], REGION[1]].std(dim=(1, 2, 3)) * 10

    marked = torch.zeros(3, 80, 160)
    marked[:, REGION[0], REGION[1]] = 1.0
    noise = torch.rand(3, 80, 160, generator=torch.Generator().manual_seed(0))
    scores = {
        name: auc(curves(region_model, x, m, ids, "deletion", 10, "road")).mean()
        for name, m in {"region": marked, "reverse": 1.0 - marked, "random": noise}.items()
    }
    assert scores["region"] > scores["random"] > scores["reverse"]
    lerf = auc(curves(region_model, x, marked, ids, "deletion", 10, "road", order="least")).mean()
    assert lerf < scores["region"]


def test_road_refuses_insertion_and_unknown_order() -> None:
    x, maps, ids = torch.randn(1, 3, 16, 16), torch.rand(1, 16, 16), np.arange(1)
    with pytest.raises(ValueError, match="road"):
        curves(lambda t: t.mean(dim=(1, 2, 3)), x, maps, ids, "insertion", 4, "road")
    with pytest.raises(ValueError, match="order"):
        curves(lambda t: t.mean(dim=(1, 2, 3)), x, maps, ids, "deletion", 4, "road", order="middle")
