"""Failure-warning scoring: labels 0.5-2 s ahead of an intervention, AUROC, lead time."""

from __future__ import annotations

import numpy as np

from qattn_ros.sim.warning import SIGNALS, SignalLog, auroc, evaluate_signals, lead_times, warning_labels


def test_labels_mark_the_frames_half_a_second_to_two_seconds_before_an_intervention() -> None:
    times = np.arange(0.0, 10.0, 0.05)
    positive, calm = warning_labels(times, [5.0])
    assert np.allclose(times[positive][[0, -1]], [3.0, 4.5], atol=0.051)
    assert not calm[(times > 3.0) & (times < 5.0)].any() and calm[times > 5.0].all() and calm[times < 2.95].all()


def test_auroc_counts_the_pairs_a_signal_orders_right() -> None:
    rng = np.random.default_rng(0)
    scores, positive = rng.normal(size=300), rng.random(300) < 0.2
    scores[positive] += 1.0
    pairs = scores[positive][:, None] - scores[~positive][None, :]
    assert auroc(scores, positive) == np.mean(pairs > 0) + 0.5 * np.mean(pairs == 0)
    assert auroc(np.ones(10), np.arange(10) < 3) == 0.5 and np.isnan(auroc(scores, np.zeros(300, bool)))


def test_a_signal_that_rises_before_each_intervention_wins_with_its_lead_time() -> None:
    rng = np.random.default_rng(1)
    logs = []
    for drive in range(6):
        log = SignalLog(times=list(np.arange(0.0, 30.0, 0.05)), interventions=[10.0 + drive, 22.0])
        times = np.asarray(log.times)
        rising = np.zeros_like(times)
        for at in log.interventions:  # ramps up from 2.5 s before each intervention
            rising += np.clip((times - (at - 2.5)) / 2.0, 0, 1) * (times < at)
        for name in SIGNALS:
            log.signals[name] = list(rising + 0.05 * rng.normal(size=times.size) if name == "steering_rate"
                                     else rng.normal(size=times.size))  # fmt: skip
        logs.append(log)
    result = evaluate_signals(logs, draws=200)
    assert result["interventions"] == 12 and result["positives"] > 0
    assert result["signals"]["steering_rate"]["auroc"] > 0.9
    assert result["signals"]["steering_rate"]["auroc_ci"][0] > result["signals"]["attention_entropy"]["auroc_ci"][1]
    assert result["signals"]["steering_rate"]["median_lead_s"] == 2.0, "above the threshold from 2 s ahead"
    assert lead_times(logs[0], "steering_rate", threshold=10.0) == [0.0, 0.0], "never crossed: no warning"
