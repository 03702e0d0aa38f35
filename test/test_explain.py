"""Known-answer tests of the explanation metrics and the evaluation engine."""

import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.integrate
import torch
from conftest import ROOT

from qattn_ros.core.preprocess import Preprocessing
from qattn_ros.explain.engine import EvalSettings, evaluate_method, read_results, relevance_scores
from qattn_ros.explain.perturbation import auc, curves, curves_loop, pixel_ranks
from qattn_ros.explain.report import bootstrap_ratio, write_report
from qattn_ros.explain.saliency import SaliencyError, check_maps, integrated_gradients_attribution, saliency
from qattn_ros.inference.predictor import Frames, SteeringPredictor
from qattn_ros.model import ModelConfig, SteeringNet
from qattn_ros.model.checkpoint import CheckpointInfo, save_checkpoint

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
    trapezoid = scipy.integrate.trapezoid(curve, np.linspace(0, 1, len(curve)))
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
    batched = curves(predict, x, maps, ids, mode, 10, substrate, batch_size=7).numpy()
    loop = curves_loop(predict, x, maps, ids, mode, 10, substrate).numpy()
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
    # distinct values 1/12800 apart: no ties at any resolution the ranking uses, so both rankings are the same
    maps = torch.from_numpy(np.stack([np.random.default_rng(i).permutation(80 * 160) for i in range(4)]))
    maps = maps.view(4, 80, 160).float() / (80 * 160)
    ours = curves(lambda t: model(t).steering, x, maps, ids, "deletion", 50, "mean").numpy()
    flipping = quantus.PixelFlipping(features_in_step=256, perturb_baseline=0.0, disable_warnings=True)
    per_channel = maps[:, None].expand(-1, 3, -1, -1).numpy()  # one attribution per feature
    flips = flipping(Steering(model).eval(), x.numpy(), np.zeros(4, int), per_channel, softmax=False, device="cpu")
    with torch.no_grad():
        start = model(x).steering.numpy()
    reference = np.abs(np.array(flips)[:, 2::3] - start[:, None])
    assert reference.shape == (4, 50)
    assert np.median(reference) > 1e-5, "the perturbation moved the output"
    # float noise: ~1e-8, up to 6e-7 where a batch of another size rounds one quantizer input across a code boundary
    assert np.allclose(ours[:, 1:], reference, rtol=1e-3, atol=1e-6)
    reverse = curves(lambda t: model(t).steering, x, -maps, ids, "deletion", 50, "mean").numpy()
    assert not np.allclose(reverse[:, 1:], reference, rtol=1e-3, atol=1e-6), "the check tells orders apart"


def test_ties_are_broken_by_a_seeded_random_order_not_by_pixel_index() -> None:
    flat = torch.ones(1, 80, 160)
    ranks = pixel_ranks(flat, np.array([3]), seed=0)[0]
    assert not torch.equal(ranks, torch.arange(80 * 160))
    assert torch.equal(ranks, pixel_ranks(flat, np.array([3]), seed=0)[0])
    assert not torch.equal(ranks, pixel_ranks(flat, np.array([4]), seed=0)[0])
    assert sorted(ranks.tolist()) == list(range(80 * 160))


def test_float_noise_far_below_the_saliency_resolution_leaves_the_ranks_unchanged() -> None:
    """Values equal but for ~1e-9 of float noise (as GPU kernels at another batch size leave them) stay ties,
    broken by the seeded order, not by the noise."""
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 33, (2, 10, 20)).astype(np.float64)
    cells[:, 0, 0], cells[:, 0, 1] = 0, 32  # the range is 0..32 in both frames
    maps = torch.from_numpy(cells / 32 * 1e-2).repeat_interleave(8, 1).repeat_interleave(8, 2)  # plateaus of ties
    noisy = maps + torch.from_numpy(rng.choice([-1e-9, 1e-9], maps.shape))
    ids = np.array([3, 4])
    ranks = pixel_ranks(maps, ids, seed=0)
    assert torch.equal(ranks, pixel_ranks(noisy, ids, seed=0))
    by_noise = torch.argsort(torch.argsort(-noisy.flatten(1), dim=1, stable=True), dim=1)
    assert not torch.equal(ranks, by_noise), "a plain sort lets the noise order the ties"


@pytest.mark.parametrize("mode, substrate", [("deletion", "mean"), ("deletion", "blur"), ("insertion", "blur")])
def test_curves_build_every_tensor_on_the_input_device(mode, substrate) -> None:
    """On the meta device any tensor made on the CPU by mistake fails the first operation it meets."""
    x = torch.randn(2, 3, 16, 32, device="meta")
    maps = torch.rand(2, 16, 32, device="meta")
    ids = np.arange(2)
    predict = lambda t: t.mean(dim=(1, 2, 3))  # noqa: E731
    batched = curves(predict, x, maps, ids, mode, 4, substrate, batch_size=3)
    loop = curves_loop(predict, x, maps, ids, mode, 4, substrate)
    assert batched.device.type == loop.device.type == "meta"
    assert batched.shape == loop.shape == (2, 5)


def test_random_order_curve_is_reproducible_with_its_seed() -> None:
    model = _net("kim_canny")
    x = torch.randn(2, 3, 80, 160)
    ids = np.arange(2)
    predict = lambda t: model(t).steering  # noqa: E731
    first = curves(predict, x, saliency("random", model, x, ids, seed=4), ids, total_steps=8, seed=4)
    again = curves(predict, x, saliency("random", model, x, ids, seed=4), ids, total_steps=8, seed=4)
    other = curves(predict, x, saliency("random", model, x, ids, seed=5), ids, total_steps=8, seed=5)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


PATCH = (slice(32, 48), slice(72, 88))  # the only pixels of the input that differ from the mean


def _patch_model_and_input() -> tuple[SteeringNet, torch.Tensor]:
    """A frame at the dataset mean (0) except one 16x16 patch. With bias-free convolutions and
    BatchNorm at its initial statistics, every activation outside the patch's receptive field is 0;
    the attention is rigged so that its logit grows with the features (0 where they are 0)."""
    torch.manual_seed(0)
    model = SteeringNet(ModelConfig(variant="kim_canny")).eval()
    with torch.no_grad():
        model.attention.feature_proj.bias.zero_()
        model.attention.score.weight.fill_(200.0)
    x = torch.zeros(2, 3, 80, 160)
    x[:, :, PATCH[0], PATCH[1]] = 2.0 + torch.randn(2, 3, 16, 16)
    return model, x


def _share_near_patch(maps: torch.Tensor, margin: int) -> torch.Tensor:
    rows = slice(PATCH[0].start - margin, PATCH[0].stop + margin)
    cols = slice(PATCH[1].start - margin, PATCH[1].stop + margin)
    return maps[:, rows, cols].flatten(1).sum(1) / maps.flatten(1).sum(1)


@pytest.mark.parametrize(
    "method, margin, least",
    [("attention", 16, 0.9), ("visual_backprop", 8, 0.99), ("gradcam", 24, 0.85), ("integrated_gradients", 0, 1.0)],
)
def test_each_method_finds_the_only_informative_patch(method, margin, least) -> None:
    """Known answer: the saliency mass sits on the patch (within `margin` px) and so does the peak; a noise map
    would put the area's share there (margin 16: 18 %, 24: 32 %)."""
    model, x = _patch_model_and_input()
    maps = saliency(method, model, x, np.arange(2))
    assert maps.shape == (2, 80, 160) and torch.isfinite(maps).all() and (maps >= 0).all()
    assert (_share_near_patch(maps, margin) >= least - 1e-6).all(), _share_near_patch(maps, margin)
    peaks = [divmod(int(i), 160) for i in maps.flatten(1).argmax(1)]
    assert all(24 <= r < 56 and 64 <= c < 96 for r, c in peaks), peaks  # within 8 px of the patch
    noise = saliency("random", model, x, np.arange(2))
    assert (_share_near_patch(noise, margin) < 0.4).all(), "the check tells a noise map apart"


def test_integrated_gradients_are_complete() -> None:
    """The attributions add up to f(x) - f(baseline), the baseline being the mean image (0)."""
    model, x = _patch_model_and_input()
    attribution = integrated_gradients_attribution(model, x, steps=256)
    with torch.no_grad():
        change = model(x).steering - model(torch.zeros_like(x)).steering
    assert change.abs().min() > 1e-5
    assert torch.allclose(attribution.flatten(1).sum(1), change, rtol=0.01, atol=1e-8)


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


def _engine_inputs(count=10) -> Frames:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (count, 80, 160, 3), dtype=np.uint8)
    masks = (rng.random((count, 80, 160)) < 0.05).astype(np.uint8) * 255
    return Frames(images, rng.normal(size=count).astype(np.float32), masks)


def _predictor(tmp_path, variant="quant_sign") -> SteeringPredictor:
    model = _net(variant)
    info = CheckpointInfo(model=model.config, preprocessing=Preprocessing(), steering_unit="sim_normalized",
                          positive_is_left=False)  # fmt: skip
    save_checkpoint(tmp_path / variant, model, info)
    return SteeringPredictor(tmp_path / variant, "cpu")


def test_a_resumed_evaluation_equals_an_uninterrupted_one(tmp_path) -> None:
    predictor = _predictor(tmp_path)
    frames = _engine_inputs()
    settings = EvalSettings(steps=6, frames_per_group=3, batch_size=50)
    full = evaluate_method(predictor, "attention", frames, tmp_path / "a" / "attention.jsonl", settings, progress=False)
    part = tmp_path / "b" / "attention.jsonl"
    evaluate_method(predictor, "attention", frames, part, settings, progress=False, max_groups=2)
    assert len(read_results(part)) == 6
    with part.open("a") as handle:
        handle.write('{"frame": 7, "deletion": [0.1')  # a line torn by a crash
    evaluate_method(predictor, "attention", frames, part, settings, progress=False)
    a, b = read_results(full), read_results(part)
    assert [r["frame"] for r in b] == list(range(10))
    for ra, rb in zip(a, b):
        assert ra["deletion"] == pytest.approx(rb["deletion"], abs=1e-6)
        assert ra["insertion_auc"] == pytest.approx(rb["insertion_auc"], abs=1e-7)
        assert ra["pointing_hit"] == rb["pointing_hit"]


def test_the_same_weights_with_another_sidecar_are_evaluated_afresh(tmp_path) -> None:
    """Only the sidecar's preprocessing.mean edited (the weights, and their SHA-256, unchanged): another model."""
    predictor = _predictor(tmp_path)
    frames, settings = _engine_inputs(4), EvalSettings(steps=4, frames_per_group=4, insertion=False)
    out = tmp_path / "eval" / "attention.jsonl"
    evaluate_method(predictor, "attention", frames, out, settings, progress=False)
    sidecar = json.loads((tmp_path / "quant_sign.json").read_text())
    sidecar["preprocessing"]["mean"] = [0.2, 0.2, 0.2]
    (tmp_path / "edited").mkdir()
    shutil.copyfile(tmp_path / "quant_sign.safetensors", tmp_path / "edited" / "quant_sign.safetensors")
    (tmp_path / "edited" / "quant_sign.json").write_text(json.dumps(sidecar))
    edited = SteeringPredictor(tmp_path / "edited" / "quant_sign", "cpu")
    assert edited.info.sha256 == predictor.info.sha256
    before = read_results(out)
    with pytest.warns(UserWarning, match="sidecar_sha256"):
        evaluate_method(edited, "attention", frames, out, settings, progress=False)
    after = read_results(out)
    assert len(after) == 4 and [r["prediction"] for r in after] != [r["prediction"] for r in before]


def _other_targets(frames: Frames) -> Frames:
    return Frames(frames.images, frames.targets + 0.5, frames.masks)


def _other_masks(frames: Frames) -> Frames:
    return Frames(frames.images, frames.targets, 255 - frames.masks)


@pytest.mark.parametrize(
    ("frames_of", "settings", "named"),
    [
        (_other_targets, {}, "frames_sha256"),  # the rows hold the steering error against the targets
        (_other_masks, {}, "frames_sha256"),  # and the mask scores
        (lambda f: f, {"seed": 1}, "settings"),  # the random order's ties, the ROAD noise
        (lambda f: f, {"road_steps": 2}, "settings"),  # ROAD curves in the rows, or not
        (lambda f: f, {"batch_size": 3, "frames_per_group": 2}, None),  # how the work is batched: the same rows
    ],
    ids=["targets", "masks", "seed", "road_steps", "batching"],
)
def test_results_of_other_targets_masks_or_settings_are_computed_again(tmp_path, frames_of, settings, named) -> None:
    """The module's promise (other frames or other settings are computed again) by the warning that sets the old
    results aside; `named`: what it names as different, None: kept and continued."""
    from qattn_ros.core.atomic import TornFileWarning

    predictor, frames = _predictor(tmp_path), _engine_inputs(4)
    base = {"steps": 4, "frames_per_group": 4, "insertion": False}
    out = tmp_path / "eval" / "attention.jsonl"
    evaluate_method(predictor, "attention", frames, out, EvalSettings(**base), progress=False)
    first = out.read_text()
    again = EvalSettings(**(base | settings))
    if named is None:
        with warnings.catch_warnings():
            warnings.simplefilter("error", TornFileWarning)
            evaluate_method(predictor, "attention", frames_of(frames), out, again, progress=False)
        assert out.read_text() == first, "nothing recomputed"
        return
    with pytest.warns(TornFileWarning, match=f"results of another {named} than this run's"):
        evaluate_method(predictor, "attention", frames_of(frames), out, again, progress=False)
    assert out.read_text() != first and len(read_results(out)) == 4


def test_bootstrap_ratio_brackets_the_ratio() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(2.0, 0.1, 500), rng.normal(1.0, 0.1, 500)
    ratio, low, high = bootstrap_ratio(a, b)
    assert low < ratio < high and 1.9 < ratio < 2.1 and high - low < 0.1


def _checkpoint(tmp_path, preprocessing: Preprocessing, variant: str = "kim_canny") -> str:
    model = _net(variant)
    info = CheckpointInfo(model=model.config, preprocessing=preprocessing, steering_unit="sim_normalized",
                          positive_is_left=False)  # fmt: skip
    save_checkpoint(tmp_path / variant, model, info)
    return str(tmp_path / variant)


def _evaluate(*args) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "evaluation" / "evaluate.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=1200)  # generous: a loaded machine


def _last_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_evaluate_cli_report_and_bad_input(tmp_path, synthetic_logs) -> None:
    kc, qs = _checkpoint(tmp_path, Preprocessing()), _checkpoint(tmp_path, Preprocessing(), "quant_sign")
    out = tmp_path / "report"
    common = ["--data", str(synthetic_logs["val"]), "--cache-dir", str(tmp_path / "cache"), "--steps", "5",
              "--road-steps", "3", "--sanity-frames", "2"]  # fmt: skip
    ok = _evaluate("--checkpoint", f"kim_canny={kc}", "--checkpoint", f"ours={qs}", "--methods", "attention,random",
                   "--frames", "8", "--out", str(out), *common)  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["baseline"] == "kim_canny"
    ours, base = (read_results(out / name / "attention.jsonl") for name in ("ours", "kim_canny"))
    assert len(ours) == len(base) == 8
    by_hand = np.mean([r["deletion_auc"] for r in ours]) / np.mean([r["deletion_auc"] for r in base])
    stats = results["models"]["ours"]["methods"]["attention"]
    assert stats["frames"] == 8 and stats["vs_kim_canny"][0] == pytest.approx(by_hand, rel=1e-9)
    assert abs(by_hand - 1) > 1e-3, "two different models: the ratio is not 1 by construction"
    low, high = stats["vs_kim_canny"][1:]
    assert low <= by_hand <= high
    random_rows = read_results(out / "ours" / "random.jsonl")
    vs_random = np.mean([r["deletion_auc"] for r in ours]) / np.mean([r["deletion_auc"] for r in random_rows])
    assert stats["vs_random"][0] == pytest.approx(vs_random, rel=1e-9)
    road = np.mean([r["road_morf_auc"] for r in ours]) / np.mean([r["road_morf_auc"] for r in base])
    assert stats["road_vs_kim_canny"][0] == pytest.approx(road, rel=1e-9)
    assert all(len(r["road_morf"]) == len(r["road_lerf"]) == 4 and r["uniform_shift"] >= 0 for r in ours)
    sanity = json.loads((out / "ours" / "attention.sanity.json").read_text())
    assert sanity["frames"] == 2 and list(sanity["stages"])[-1] == "conv1"
    uniform = sanity["uniform_maps"]
    assert list(uniform) == list(sanity["stages"]) and all(0 <= n <= 2 for n in uniform.values())
    assert stats["sanity_rho"] == pytest.approx(np.mean(sanity["stages"]["conv1"]))
    assert results["models"]["ours"]["uniform_shift"][0] == pytest.approx(np.mean([r["uniform_shift"] for r in ours]))
    errors = np.array([r["prediction"] - r["target"] for r in ours])
    assert results["models"]["ours"]["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-9)
    assert {"curves.png", "overlays.png", "table.md"} <= {p.name for p in out.iterdir()}
    spent = json.loads((out / "ours" / "model.json").read_text())["seconds"]
    assert list(spent) == ["attention", "random"] and all(s > 0 for s in spent.values()), spent
    table = (out / "table.md").read_text().splitlines()
    assert len(table) == 2 + 4 and any(row.startswith("| ours | attention | 8 |") for row in table)
    before = (out / "kim_canny" / "attention.jsonl").read_text()

    bad_method = _evaluate("--checkpoint", f"kim_canny={kc}", "--methods", "attention,lime", "--out", str(out), *common)
    assert "unknown lime" in _last_line(bad_method)
    bad_anchor = _evaluate("--checkpoint", f"kim_canny={kc}", "--crop-anchor", "1.5", "--out", str(out), *common)
    assert _last_line(bad_anchor).endswith("--crop-anchor 1.5: expected 0..1 (0 top, 0.5 centre, 1 bottom)")

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "driving_log.csv").write_text("center,left,right,steering,throttle,brake,speed\n")
    no_frames = _evaluate("--checkpoint", f"kim_canny={kc}", "--out", str(out), "--data", str(empty))
    assert _last_line(no_frames).endswith(f"{empty / 'driving_log.csv'}: no frames")

    other = _checkpoint(tmp_path / "rgb", Preprocessing(color="rgb"))
    cache_entry = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    mismatch = _evaluate("--checkpoint", f"rgb={other}", "--cache", str(cache_entry), "--out", str(out), *common)
    last = _last_line(mismatch)
    assert "was built with preprocessing" in last and "'color': 'rgb'" in last
    assert (out / "kim_canny" / "attention.jsonl").read_text() == before, "what was computed stays"
    rewritten = write_report(out)  # the report is rebuilt from the files: the same numbers
    assert list(rewritten["models"]["ours"]["methods"]["attention"]["vs_kim_canny"]) == stats["vs_kim_canny"]
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(rewritten))
