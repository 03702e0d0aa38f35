"""The headline's summary rules: Pareto dominance, the recommendation, the late validation swing."""

import numpy as np
import pytest

from benchmarks.cross_model import hierarchical_means, seed_interval, summarize
from benchmarks.headline import best_point, pareto
from qattn_ros.core.metrics import late_swing


def _entry(deletion: float, road: float, rmse: float) -> dict:
    ratio = {"vs_kim_canny": deletion, "vs_kim_canny_ci": [deletion - 0.1, deletion + 0.1]}
    road_ratio = {"vs_kim_canny": road, "vs_kim_canny_ci": [road - 0.2, road + 0.2]}
    return {"seeds": 3, "rmse_ratio": rmse, "uniform_shift": 0.0,
            "methods": {"attention": {"deletion_auc": ratio, "road_morf_auc": road_ratio}}}  # fmt: skip


def test_a_point_worse_on_every_axis_is_off_the_front_and_the_recommendation_respects_the_rmse_limit() -> None:
    table = {
        "binary_sign": _entry(1.8, 1.6, 1.10),  # most faithful, drives 10 % worse
        "quant_sign_b2_p0.5": _entry(1.5, 1.4, 1.00),
        "quant_sign_b2_p0": _entry(1.4, 1.3, 1.02),  # dominated by b2_p0.5
        "quant_sign_b3_p0.5": _entry(1.2, 1.5, 0.99),
        "kim_canny": _entry(1.0, 1.0, 1.0),  # not a grid point
    }
    front = {p["name"]: p["front"] for p in pareto(table)}
    assert front == {"binary_sign": True, "quant_sign_b2_p0.5": True, "quant_sign_b2_p0": False,
                     "quant_sign_b3_p0.5": True}  # fmt: skip
    assert best_point(pareto(table))["name"] == "quant_sign_b2_p0.5"  # binary_sign is over the RMSE limit


def test_late_swing_is_the_largest_relative_step_after_epoch_three() -> None:
    history = [{"val_rmse": v} for v in (0.05, 0.02, 0.0105, 0.0167, 0.0149, 0.0150)]
    assert late_swing(history) == pytest.approx((0.0167 - 0.0105) / 0.0105)
    assert late_swing(history[:3]) == 0.0


def test_hierarchical_bootstrap_spans_the_seed_spread() -> None:
    rng = np.random.default_rng(0)
    seeds = [rng.normal(mean, 0.01, 200) for mean in (1.0, 1.2, 1.4)]
    draws = hierarchical_means(seeds, np.random.default_rng(1), 2000)
    assert np.percentile(draws, 2.5) < 1.1 and np.percentile(draws, 97.5) > 1.3
    assert seed_interval([2.0]) == [2.0, 2.0]


def test_normalized_ratio_removes_how_much_a_model_moves_under_any_deletion() -> None:
    """binary_sign moves 3x more than kim_canny under any order; its map is 2x its own random order where
    kim_canny's is 1x: the raw ratio says 6, the normalized one 2 (numbers made by hand)."""
    rng = np.random.default_rng(0)

    def run(random_scale: float, over_random: float, road: tuple[float, float]) -> dict:
        floor = random_scale * rng.uniform(0.5, 1.5, 50)
        lerf = rng.uniform(0.5, 1.5, 50)
        return {"rmse": 1.0, "uniform_shift": np.zeros(50),
                "attention": {"deletion_auc": over_random * floor, "road_morf_auc": road[0] * lerf,
                              "road_lerf_auc": road[1] * lerf, "sanity": {}},
                "random": {"deletion_auc": floor, "sanity": {}}}  # fmt: skip

    table = summarize({"kim_canny": [run(1.0, 1.0, (1.0, 1.0)) for _ in range(3)],
                       "binary_sign": [run(3.0, 2.0, (4.0, 2.0)) for _ in range(3)]})  # fmt: skip
    att = table["binary_sign"]["methods"]["attention"]
    assert att["deletion_auc"]["vs_kim_canny"] == pytest.approx(6.0, rel=0.15)
    assert att["deletion_over_random"]["vs_kim_canny"] == pytest.approx(2.0)
    assert att["deletion_over_random"]["vs_kim_canny_ci"] == pytest.approx([2.0, 2.0])  # paired per frame
    assert att["road_morf_over_lerf"]["vs_kim_canny"] == pytest.approx(2.0)
    assert att["road_morf_over_lerf"]["mean"] == pytest.approx(2.0)
    assert "deletion_over_random" not in table["binary_sign"]["methods"]["random"]
