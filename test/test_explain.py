"""Known-answer tests of the explanation metrics and the evaluation engine."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT

from qattn_ros.explain.engine import EvalSettings, evaluate_method, read_results, relevance_scores
from qattn_ros.explain.perturbation import auc, curves, curves_loop, pixel_ranks
from qattn_ros.explain.report import bootstrap_ratio, write_report
from qattn_ros.explain.saliency import SaliencyError, check_maps, saliency
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint
from qattn_ros.preprocess import Preprocessing

REGION = (slice(20, 40), slice(60, 100))  # rows, columns the region model reads


def region_model(x: torch.Tensor) -> torch.Tensor:
    """Output depends on one image region only."""
    return x[:, :, REGION[0], REGION[1]].mean(dim=(1, 2, 3)) * 10


def _net(variant="quant_sign") -> SteeringNet:
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant=variant)).eval()
    model.calibrate(torch.randn(8, 3, 80, 160))
    return model


def test_auc_is_the_trapezoid_rule_and_risés_formula() -> None:
    curve = np.array([0.0, 0.5, 0.25, 1.0, 0.75])
    trapezoid = np.trapezoid(curve, np.linspace(0, 1, len(curve)))
    rise = (curve.sum() - curve[0] / 2 - curve[-1] / 2) / (curve.shape[0] - 1)
    assert auc(curve) == pytest.approx(trapezoid) == pytest.approx(rise)
    assert auc(np.ones(51)) == pytest.approx(1.0)
    assert np.allclose(auc(np.stack([curve, 2 * curve])), [trapezoid, 2 * trapezoid])


def test_marking_the_region_gives_the_highest_deletion_auc_and_its_reverse_the_lowest() -> None:
    torch.manual_seed(1)
    x = torch.randn(4, 3, 80, 160) + 2.0  # region mean far from the substrate (0)
    ids = np.arange(4)
    marked = torch.zeros(4, 80, 160)
    marked[:, REGION[0], REGION[1]] = 1.0
    noise = torch.rand(4, 80, 160, generator=torch.Generator().manual_seed(0))
    maps = {"region": marked, "reverse": 1.0 - marked, "random": noise}
    scores = {name: auc(curves(region_model, x, m, ids, "deletion", 20)).mean() for name, m in maps.items()}
    assert scores["region"] > scores["random"] > scores["reverse"]
    assert scores["reverse"] < 0.1 * scores["region"]


def test_insertion_of_the_region_first_scores_lowest() -> None:
    torch.manual_seed(2)
    x = torch.randn(3, 3, 80, 160) * 3
    ids = np.arange(3)
    marked = torch.zeros(3, 80, 160)
    marked[:, REGION[0], REGION[1]] = 1.0
    region = auc(curves(region_model, x, marked, ids, "insertion", 20)).mean()
    reverse = auc(curves(region_model, x, 1.0 - marked, ids, "insertion", 20)).mean()
    assert region < reverse


@pytest.mark.parametrize("mode, substrate", [("deletion", "mean"), ("deletion", "blur"), ("insertion", "blur")])
def test_batched_engine_equals_the_per_step_loop(mode, substrate) -> None:
    model = _net()
    x = torch.randn(3, 3, 80, 160)
    ids = np.array([5, 9, 2])
    maps = saliency("attention", model, x, ids)
    predict = lambda t: model(t).steering  # noqa: E731
    batched = curves(predict, x, maps, ids, mode, 10, substrate, batch_size=7)
    loop = curves_loop(predict, x, maps, ids, mode, 10, substrate)
    assert np.allclose(batched, loop, atol=1e-6)
    assert np.all(batched[:, 0] == 0) if mode == "deletion" else np.allclose(batched[:, -1], 0, atol=1e-6)


def test_deletion_equals_quantus_pixel_flipping() -> None:
    """Cross-check against an independent implementation: Quantus' PixelFlipping (Bach et al.).

    Quantus flips the features (channel values) in descending attribution order, a fixed count
    per step, and returns the model output after each step. With a map free of ties, every third
    of its 256-feature steps has flipped the 3 channels of another 256 pixels: our 50 steps, so
    |output_k - output_0| there is our curve.
    """
    import quantus  # requirements-crosscheck.txt; imported here so that only this test needs it

    class Steering(torch.nn.Module):  # Quantus reads (N, classes) outputs
        def __init__(self, net: SteeringNet) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).steering.unsqueeze(1)

    model = _net()
    torch.manual_seed(1)
    x = torch.randn(4, 3, 80, 160)
    ids = np.arange(4)
    maps = torch.rand(4, 80, 160)  # continuous: no ties, so both rankings are the same
    ours = curves(lambda t: model(t).steering, x, maps, ids, "deletion", 50, "mean")
    flipping = quantus.PixelFlipping(features_in_step=256, perturb_baseline=0.0, disable_warnings=True)
    per_channel = maps[:, None].expand(-1, 3, -1, -1).numpy()  # one attribution per feature
    flips = flipping(Steering(model).eval(), x.numpy(), np.zeros(4, int), per_channel, softmax=False, device="cpu")
    with torch.no_grad():
        start = model(x).steering.numpy()
    reference = np.abs(np.array(flips)[:, 2::3] - start[:, None])
    assert reference.shape == (4, 50)
    assert np.median(reference) > 1e-5, "the perturbation moved the output"
    assert np.allclose(ours[:, 1:], reference, rtol=1e-3, atol=1e-7)  # float noise: ~1e-8
    reverse = curves(lambda t: model(t).steering, x, -maps, ids, "deletion", 50, "mean")
    assert not np.allclose(reverse[:, 1:], reference, rtol=1e-3, atol=1e-7), "the check tells orders apart"


def test_ties_are_broken_by_a_seeded_random_order_not_by_pixel_index() -> None:
    flat = torch.ones(1, 80, 160)
    ranks = pixel_ranks(flat, np.array([3]), seed=0)[0]
    assert not torch.equal(ranks, torch.arange(80 * 160))
    assert torch.equal(ranks, pixel_ranks(flat, np.array([3]), seed=0)[0])
    assert not torch.equal(ranks, pixel_ranks(flat, np.array([4]), seed=0)[0])
    assert sorted(ranks.tolist()) == list(range(80 * 160))


def test_random_order_curve_is_reproducible_with_its_seed() -> None:
    model = _net("kim_canny")
    x = torch.randn(2, 3, 80, 160)
    ids = np.arange(2)
    predict = lambda t: model(t).steering  # noqa: E731
    first = curves(predict, x, saliency("random", model, x, ids, seed=4), ids, total_steps=8, seed=4)
    again = curves(predict, x, saliency("random", model, x, ids, seed=4), ids, total_steps=8, seed=4)
    other = curves(predict, x, saliency("random", model, x, ids, seed=5), ids, total_steps=8, seed=5)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


@pytest.mark.parametrize("method", ["visual_backprop", "gradcam", "integrated_gradients"])
def test_every_method_gives_finite_non_negative_maps(method) -> None:
    model = _net()
    x = torch.randn(2, 3, 80, 160)
    maps = saliency(method, model, x, np.arange(2))
    assert maps.shape == (2, 80, 160) and torch.isfinite(maps).all() and (maps >= 0).all() and maps.sum() > 0


def test_relevance_scores_known_answer() -> None:
    maps = torch.zeros(2, 4, 4)
    maps[0, 0, 0] = 3.0
    maps[0, 3, 3] = 1.0
    maps[1, 2, 2] = 1.0
    masks = np.zeros((2, 4, 4), np.uint8)
    masks[:, 0, :2] = 255  # 2 of 16 pixels
    mass, ratio, hit = relevance_scores(maps, masks)
    assert np.allclose(mass, [0.75, 0.0]) and np.allclose(ratio, [0.75 * 8, 0.0])
    assert hit.tolist() == [True, False]


def test_bad_maps_are_refused_naming_the_method() -> None:
    x = torch.zeros(2, 3, 80, 160)
    with pytest.raises(SaliencyError, match=r"gradcam: saliency map has shape \(2, 40, 80\), expected \(2, 80, 160\)"):
        check_maps(torch.zeros(2, 40, 80), x, "gradcam")
    nan = torch.zeros(2, 80, 160)
    nan[1, 3, 3] = float("nan")
    with pytest.raises(SaliencyError, match="attention: saliency map of batch item 1 contains NaN"):
        check_maps(nan, x, "attention")
    with pytest.raises(SaliencyError, match="pilotnet model has no attention"):
        saliency("attention", _net("pilotnet"), x, np.arange(2))


def _engine_inputs(count=10):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (count, 80, 160, 3), dtype=np.uint8)
    masks = (rng.random((count, 80, 160)) < 0.05).astype(np.uint8) * 255
    return images, masks, rng.normal(size=count).astype(np.float32)


def test_a_resumed_evaluation_equals_an_uninterrupted_one(tmp_path) -> None:
    model = _net()
    images, masks, targets = _engine_inputs()
    pre = Preprocessing()
    settings = EvalSettings(steps=6, frames_per_group=3, batch_size=50)
    full = evaluate_method(model, "attention", images, pre.normalize, tmp_path / "a" / "attention.jsonl", settings,
                           masks, targets, progress=False)  # fmt: skip
    part = tmp_path / "b" / "attention.jsonl"
    evaluate_method(
        model, "attention", images, pre.normalize, part, settings, masks, targets, progress=False, max_groups=2
    )
    assert len(read_results(part)) == 6
    with part.open("a") as handle:
        handle.write('{"frame": 7, "deletion": [0.1')  # a line torn by a crash
    evaluate_method(model, "attention", images, pre.normalize, part, settings, masks, targets, progress=False)
    a, b = read_results(full), read_results(part)
    assert [r["frame"] for r in b] == list(range(10))
    for ra, rb in zip(a, b):
        assert ra["deletion"] == pytest.approx(rb["deletion"], abs=1e-6)
        assert ra["insertion_auc"] == pytest.approx(rb["insertion_auc"], abs=1e-7)
        assert ra["pointing_hit"] == rb["pointing_hit"]


def test_bootstrap_ratio_brackets_the_ratio() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(2.0, 0.1, 500), rng.normal(1.0, 0.1, 500)
    ratio, low, high = bootstrap_ratio(a, b)
    assert low < ratio < high and 1.9 < ratio < 2.1 and high - low < 0.1


def _checkpoint(tmp_path, preprocessing: dict) -> str:
    model = _net("kim_canny")
    info = CheckpointInfo(model=model.config, preprocessing=preprocessing, steering_unit="sim_normalized",
                          positive_is_left=False)  # fmt: skip
    save_checkpoint(tmp_path / "kc", model, info)
    return str(tmp_path / "kc")


def _evaluate(*args) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "training" / "evaluate.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_evaluate_cli_report_and_bad_input(tmp_path, synthetic_logs) -> None:
    ckpt = _checkpoint(tmp_path, Preprocessing().to_dict())
    out = tmp_path / "report"
    common = ["--data", str(synthetic_logs["val"]), "--cache-dir", str(tmp_path / "cache"), "--steps", "5"]
    ok = _evaluate("--checkpoint", f"kim_canny={ckpt}", "--methods", "attention,random", "--frames", "8",
                   "--out", str(out), *common)  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    stats = results["models"]["kim_canny"]["methods"]["attention"]
    assert stats["frames"] == 8 and stats["vs_kim_canny"][0] == pytest.approx(1.0)
    assert {"curves.png", "overlays.png", "table.md"} <= {p.name for p in out.iterdir()}
    before = (out / "kim_canny" / "attention.jsonl").read_text()

    bad_method = _evaluate(
        "--checkpoint", f"kim_canny={ckpt}", "--methods", "attention,lime", "--out", str(out), *common
    )
    assert bad_method.returncode == 1 and "unknown lime" in bad_method.stderr.strip().splitlines()[-1]

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "driving_log.csv").write_text("center,left,right,steering,throttle,brake,speed\n")
    no_frames = _evaluate("--checkpoint", f"kim_canny={ckpt}", "--out", str(out), "--data", str(empty))
    assert no_frames.returncode == 1 and "empty driving log" in no_frames.stderr or "no frames" in no_frames.stderr

    other = _checkpoint(tmp_path / "rgb", Preprocessing(color="rgb").to_dict())
    cache_entry = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    mismatch = _evaluate("--checkpoint", f"rgb={other}", "--cache", str(cache_entry), "--out", str(out), *common)
    last = mismatch.stderr.strip().splitlines()[-1]
    assert mismatch.returncode == 1 and "was built with preprocessing" in last and "'color': 'rgb'" in last
    assert "Traceback" not in mismatch.stderr + no_frames.stderr + bad_method.stderr
    assert (out / "kim_canny" / "attention.jsonl").read_text() == before, "what was computed stays"
    assert (out / "results.json").is_file()
    write_report(out)
