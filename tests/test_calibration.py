"""Calibration measures and temperature scaling on hand-made and synthetic probabilities."""
import numpy as np
import pytest

from evaluation.analysis import figure_pixels
from evaluation.calibration import (TEMPERATURE_RANGE, expected_calibration_error, fit_temperature, reliability_bins,
                                reliability_figure, softmax_with_temperature)


def test_ece_of_a_hand_computed_case():
    # Two examples at confidence 0.9 (bin 13 of 15: (0.867, 0.933]), one right: |0.5 - 0.9| = 0.4, weight 2/4.
    # Two at 0.6 (bin 8: (0.533, 0.6]), both right: |1.0 - 0.6| = 0.4, weight 2/4. ECE = 0.4.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])
    gold = np.array([0, 1, 1, 0])
    assert expected_calibration_error(probabilities, gold) == pytest.approx(0.4)
    bins = reliability_bins(probabilities, gold)
    assert bins.count.sum() == 4 and bins.count[13] == 2 and bins.count[8] == 2
    assert bins.accuracy[13] == 0.5 and bins.confidence[13] == pytest.approx(0.9)
    assert np.isnan(bins.accuracy[0])  # empty bins are nan, not 0


def test_ece_is_zero_when_confidence_equals_accuracy():
    # In each group of 10 examples at confidence 0.7 (or 0.9), exactly 7 (or 9) have the top label gold.
    probabilities = np.array([[0.7, 0.3]] * 10 + [[0.1, 0.9]] * 10)
    gold = np.array([0] * 7 + [1] * 3 + [1] * 9 + [0])
    assert expected_calibration_error(probabilities, gold) == pytest.approx(0.0, abs=1e-12)


def synthetic_logits(n=20000, classes=5, seed=0):
    """Logits and labels drawn from their own softmax: calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(n, classes))
    probabilities = softmax_with_temperature(logits, 1.0)
    gold = (probabilities.cumsum(1) < rng.random((n, 1))).sum(1)
    return logits, gold


def test_temperature_fit_recovers_a_known_temperature():
    logits, gold = synthetic_logits()
    assert fit_temperature(logits, gold) == pytest.approx(1.0, abs=0.05)
    assert fit_temperature(logits * 3, gold) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(logits / 2, gold) == pytest.approx(0.5, rel=0.05)
    assert fit_temperature(logits * 3, gold) == fit_temperature(logits * 3, gold)  # deterministic
    overconfident = softmax_with_temperature(logits * 3, 1.0)
    recalibrated = softmax_with_temperature(logits * 3, fit_temperature(logits * 3, gold))
    assert expected_calibration_error(recalibrated, gold) < 0.02 < expected_calibration_error(overconfident, gold)


def test_temperature_is_clamped_when_the_likelihood_has_no_minimum():
    # All right: the sharper the better, T -> 0; all wrong: the flatter the better, T -> infinity.
    all_right = np.array([[1.0, 0.0, 0.0], [0.0, 1.5, 0.0]])
    assert fit_temperature(all_right, np.array([0, 1])) == pytest.approx(TEMPERATURE_RANGE[0], rel=1e-3)
    all_wrong = np.array([[1.0, 0.0], [0.0, 1.5]])
    assert fit_temperature(all_wrong, np.array([1, 0])) == pytest.approx(TEMPERATURE_RANGE[1], rel=1e-3)
    # Huge margins: the likelihood is 1 to float precision at every T <= 1; any of them is a finite answer.
    huge = np.array([[500.0, 0.0], [0.0, 600.0]])
    assert TEMPERATURE_RANGE[0] <= fit_temperature(huge, np.array([0, 1])) <= 1.0


def test_temperature_scaling_keeps_every_prediction():
    logits, _ = synthetic_logits(n=2000)
    for temperature in (0.05, 0.7, 3.0, 20.0):
        scaled = softmax_with_temperature(logits, temperature)
        assert np.array_equal(scaled.argmax(1), logits.argmax(1))
        assert np.allclose(scaled.sum(1), 1.0)


def test_reliability_figure_renders():
    logits, gold = synthetic_logits(n=500)
    fig = reliability_figure(softmax_with_temperature(logits, 0.5), gold, "validation")
    assert "ECE" in fig.axes[0].get_title()
    pixels = figure_pixels(fig)
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.std() > 0
