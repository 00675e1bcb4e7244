"""Temperature scaling: how a model's logits become calibrated probabilities.

A temperature T > 0 divides the logits before the softmax. It never changes the predicted class, only the
confidence, and is fitted to minimise the negative log-likelihood on the *validation* split (`digitlab
evaluate` does it and stores T beside the model; see `digitlab.models.saved`). Every consumer of
probabilities (predict, serve, finetune, the report) applies T through `probabilities`.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood (nats) of (N, C) logits for (N,) integer labels."""
    return float(-np.mean(log_softmax(logits, axis=1)[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 that minimises NLL(logits / T); searched on log T so the optimiser stays in T > 0."""
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits / np.exp(log_t), labels),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def temperature_fit(val_logits: np.ndarray, y_val: np.ndarray, seen: str = "") -> tuple[float, dict[str, object]]:
    """The temperature a run gets, and what calibration.json records beside it.

    Fitted on the validation logits, unless those digits were seen in training (an imported model, a --full-train
    run): then 1, and the record says why.

    Args:
        val_logits: (N, 10) the model's logits for the validation digits.
        y_val: (N,) their labels.
        seen: why the validation digits may have been seen in training ("" when they were held out).

    Returns:
        (temperature > 0, {"fitted_on", "validation_nll_before", "validation_nll_after"}).
    """
    temperature = 1.0 if seen else fit_temperature(val_logits, y_val)
    return temperature, {
        "fitted_on": f"nothing: {seen}" if seen else "validation",
        "validation_nll_before": negative_log_likelihood(val_logits, y_val),
        "validation_nll_after": negative_log_likelihood(val_logits / temperature, y_val),
    }


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T) in float64, one row per example."""
    return softmax(np.asarray(logits, np.float64) / temperature, axis=1)
