"""Does a classifier's confidence match its accuracy? Top-label expected calibration error (ECE), the
reliability diagram, and temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural
Networks"): one scalar T fitted on validation logits, probabilities softmax(logits / T) afterwards.
Dividing every logit by the same T > 0 keeps each example's argmax, so accuracy and F1 are untouched.

Pure functions of arrays (single-label: probabilities or logits (N, C), gold label ids (N,)).
"""
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure  # not pyplot: no global figure state, no display backend needed

BINS = 15  # Guo et al.'s number of equal-width confidence bins
# The fitted T is clamped here: on a set the model gets all right the likelihood keeps rising as T -> 0,
# on one it gets all wrong as T -> infinity; neither limit is a temperature to keep.
TEMPERATURE_RANGE = (0.05, 20.0)


@dataclass
class ReliabilityBins:
    edges: np.ndarray  # (B + 1,) bin i holds the confidences in (edges[i], edges[i + 1]]
    confidence: np.ndarray  # (B,) mean top-label probability of the bin's examples; nan if empty
    accuracy: np.ndarray  # (B,) fraction of them whose top label is gold; nan if empty
    count: np.ndarray  # (B,) examples in the bin


def reliability_bins(probabilities, gold, bins: int = BINS) -> ReliabilityBins:
    probabilities = np.asarray(probabilities, np.float64)
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == np.asarray(gold)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges, right=True) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins: 0 / 0 -> nan, on purpose
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(which, weights=correct, minlength=bins) / count
    return ReliabilityBins(edges, mean_confidence, accuracy, count)


def expected_calibration_error(probabilities, gold, bins: int = BINS) -> float:
    """Sum over bins of |accuracy - mean confidence|, each weighted by its share of the examples."""
    b = reliability_bins(probabilities, gold, bins)
    filled = b.count > 0
    weights = b.count[filled] / b.count.sum()
    return float(np.sum(weights * np.abs(b.accuracy[filled] - b.confidence[filled])))


def reliability_figure(probabilities, gold, title: str, bins: int = BINS) -> Figure:
    """Accuracy per confidence bin against the diagonal (a perfectly calibrated model's bars touch it),
    the ECE in the title, and below it how many examples each bin holds: a large gap in a bin of few
    examples matters little."""
    b = reliability_bins(probabilities, gold, bins)
    ece = expected_calibration_error(probabilities, gold, bins)
    lefts, width = b.edges[:-1], 1.0 / bins
    fig = Figure(figsize=(4.5, 5.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.bar(lefts, np.nan_to_num(b.accuracy), width=width, align="edge", edgecolor="black", label="accuracy")
    top.bar(lefts, np.nan_to_num(b.confidence - b.accuracy), bottom=np.nan_to_num(b.accuracy), width=width,
            align="edge", color="tab:red", alpha=0.3, label="gap to confidence")
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="calibrated")
    top.set(title=f"{title}: ECE {ece:.4f}", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    top.legend(loc="upper left", fontsize="small")
    bottom.bar(lefts, b.count, width=width, align="edge", edgecolor="black", color="tab:gray")
    bottom.set(xlabel="confidence (top-label probability)", ylabel="examples")
    return fig


def log_softmax(logits) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def softmax_with_temperature(logits, temperature: float) -> np.ndarray:
    return np.exp(log_softmax(np.asarray(logits, np.float64) / temperature))


def mean_nll(logits: np.ndarray, gold: np.ndarray) -> float:
    """Mean cross-entropy, computed as (max - gold logit) + log1p(sum of the other exp(z - max)): a
    confident right answer's loss, e.g. 1e-30, stays above 0 instead of rounding to log(1) = 0, so the
    fit below still sees which way is better where the plain log-softmax is flat."""
    rows, top = np.arange(len(gold)), logits.argmax(1)
    shifted = np.exp(logits - logits[rows, top][:, None])
    shifted[rows, top] = 0.0
    return float(np.mean(logits[rows, top] - logits[rows, gold] + np.log1p(shifted.sum(1))))


def fit_temperature(logits, gold) -> float:
    """The T in TEMPERATURE_RANGE minimising the mean negative log-likelihood of softmax(logits / T)
    on (validation) logits. The NLL is convex in 1/T, so it has one minimum along log T, which a
    bounded 1-D search finds deterministically (no learning rate, no iteration budget to tune)."""
    from scipy.optimize import minimize_scalar

    logits, gold = np.asarray(logits, np.float64), np.asarray(gold)
    if len(gold) == 0:
        raise ValueError("no examples to fit a temperature on")
    low, high = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(lambda log_t: mean_nll(logits / np.exp(log_t), gold), bounds=(low, high),
                             method="bounded", options={"xatol": 1e-6})
    return float(np.clip(np.exp(result.x), *TEMPERATURE_RANGE))
