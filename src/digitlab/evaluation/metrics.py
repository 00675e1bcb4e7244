"""Evaluation: metrics, calibration and error analysis of a trained model, once, on held-out data.

Classification metrics come from scikit-learn; what no maintained library provides for Keras logits is
written here and tested against hand-computed cases: Expected Calibration Error, the multi-class Brier
score, and temperature scaling.

Definitions (all computed from softmax(logits / T)):
- confidence = the largest class probability; prediction = its class.
- ECE (15 equal-width bins over [0, 1]) = Σ_b (n_b / N) · |accuracy(b) − mean confidence(b)|, where bin b
  holds the examples whose confidence falls in ((b−1)/15, b/15] (the first bin includes 0).
- NLL = mean of −log p(true class); Brier = mean over examples of Σ_k (p_k − 1[k = true])², in [0, 2].
- Temperature T > 0 minimises the NLL on the *validation* split; dividing logits by T never changes the
  predicted class, only the confidence.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import softmax

from digitlab.data.images import NUM_CLASSES
from digitlab.models.calibration import negative_log_likelihood

ECE_BINS = 15


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected Calibration Error (Guo et al. 2017, "On Calibration of Modern Neural Networks").

    Args:
        probs: (N, C) class probabilities, rows summing to 1.
        labels: (N,) true classes.
        bins: equal-width confidence bins over [0, 1].

    Returns:
        Σ_b (n_b / N) · |accuracy(b) − mean confidence(b)|, in [0, 1].
    """
    stats = reliability_bins(probs, labels, bins)
    n = len(labels)
    rows = zip(stats["count"], stats["accuracy"], stats["confidence"], strict=True)
    return float(sum(count / n * abs(acc - conf) for count, acc, conf in rows if count))


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Per-bin count, accuracy and mean confidence: the data of a reliability diagram.

    Args:
        probs: (N, C) class probabilities.
        labels: (N,) true classes.
        bins: equal-width confidence bins; bin b holds ((b−1)/bins, b/bins], the first also 0.

    Returns:
        `count`, `accuracy`, `confidence` (one value per bin; 0 for an empty bin) and `edges` (bins + 1 values).
    """
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    # bin b holds ((b-1)/bins, b/bins]; ceil puts exact edges in the lower bin, max(…, 1) puts 0 in the first
    index = np.clip(np.ceil(confidence * bins).astype(int), 1, bins) - 1
    out: dict[str, list[float]] = {"count": [], "accuracy": [], "confidence": []}
    for b in range(bins):
        mask = index == b
        out["count"].append(int(mask.sum()))
        out["accuracy"].append(float(correct[mask].mean()) if mask.any() else 0.0)
        out["confidence"].append(float(confidence[mask].mean()) if mask.any() else 0.0)
    out["edges"] = np.linspace(0, 1, bins + 1).tolist()
    return out


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """The multi-class Brier score (Brier 1950): mean over examples of Σ_k (p_k − 1[k = true])².

    Args:
        probs: (N, C) class probabilities.
        labels: (N,) true classes.

    Returns:
        A float in [0, 2] (lower is better).
    """
    onehot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def most_confused_pairs(confusion: np.ndarray, top: int = 10) -> list[dict[str, int]]:
    """The off-diagonal cells of a confusion matrix, largest first.

    Args:
        confusion: (10, 10) counts, rows = true class, columns = predicted.
        top: at most this many pairs.

    Returns:
        `{true, predicted, count}` per pair with count > 0.
    """
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None)[:top]
    pairs = [(int(i // NUM_CLASSES), int(i % NUM_CLASSES)) for i in order]
    return [{"true": t, "predicted": p, "count": int(off[t, p])} for t, p in pairs if off[t, p] > 0]


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Everything that depends on the predicted class only (so temperature scaling never changes it).

    Args:
        logits: (N, 10) float logits.
        labels: (N,) true classes 0-9.

    Returns:
        `accuracy`, `top2_accuracy` (in [0, 1]), `per_class` (class → precision, recall, f1-score, support),
        `macro_avg`, `weighted_avg`, `confusion_matrix` (10 × 10 lists) and `most_confused`.
    """
    from sklearn.metrics import classification_report, confusion_matrix, top_k_accuracy_score

    predicted = logits.argmax(axis=1)
    report = classification_report(
        labels, predicted, labels=list(range(NUM_CLASSES)), output_dict=True, zero_division=0
    )
    confusion = confusion_matrix(labels, predicted, labels=list(range(NUM_CLASSES)))
    per_class = {
        str(c): {k: float(report[str(c)][k]) for k in ("precision", "recall", "f1-score")}
        | {"support": int(report[str(c)]["support"])}
        for c in range(NUM_CLASSES)
    }
    averages = {
        name: {k: float(report[name][k]) for k in ("precision", "recall", "f1-score")}
        for name in ("macro avg", "weighted avg")
    }
    return {
        "accuracy": float(np.mean(predicted == labels)),
        # scikit-learn's top-k (equal to the argsort it replaced on float logits; exact ties rank higher classes
        # first); `labels` names all 10 classes so a split missing one still scores
        "top2_accuracy": float(top_k_accuracy_score(labels, logits, k=2, labels=list(range(NUM_CLASSES)))),
        "per_class": per_class,
        "macro_avg": averages["macro avg"],
        "weighted_avg": averages["weighted avg"],
        "confusion_matrix": confusion.tolist(),
        "most_confused": most_confused_pairs(confusion),
    }


def calibration_metrics(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> dict[str, float]:
    """How well the probabilities softmax(logits / T) match the accuracy.

    Args:
        logits: (N, 10) float logits.
        labels: (N,) true classes 0-9.
        temperature: T > 0.

    Returns:
        `temperature`, `loss` (= `nll`, the mean cross-entropy in nats), `ece`, `brier` and `mean_confidence`.
    """
    scaled = logits / temperature
    probs = softmax(scaled, axis=1)
    nll = negative_log_likelihood(scaled, labels)
    return {
        "temperature": temperature,
        "loss": nll,  # = NLL, the cross-entropy loss
        "nll": nll,
        "ece": expected_calibration_error(probs, labels),
        "brier": brier_score(probs, labels),
        "mean_confidence": float(probs.max(axis=1).mean()),
    }
