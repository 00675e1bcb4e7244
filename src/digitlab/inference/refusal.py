"""The honest single-digit answers: "several digits", "not a digit", besides "blank" and a digit.

The 10-class model stays as it is (exports, TF Serving and imported models keep their contract); refusing is a
separate score computed from what every runtime has: the model's logits on the 28×28 and the 28×28 itself.
Six features, standardized on the run's validation digits, go through a logistic regression:

- energy, −logsumexp(logits) (Liu et al., "Energy-based out-of-distribution detection", NeurIPS 2020), and
  1 − the maximum softmax probability (Hendrycks & Gimpel, ICLR 2017): the model's own doubt;
- `knn` and `residual` from `digitlab.data.digit_space`: how far the 28×28 is from every MNIST digit;
- |log(width / height)| of the ink's box (MNIST digits are never flat) and the share of the 28×28 that is ink.

The regression is fitted on the run's validation digits (plain and drawn as canvases, photos, …, then
preprocessed) against generated non-digits of *other* families than the benchmark's
(`synthetic.FIT_NON_DIGIT_FAMILIES`), and the threshold is the score that refuses 1% of those validation
digits. `refusal.json` in the run keeps it, with the trade-off curve it was chosen from; a run without one
(older runs, imported models) gets it fitted on first use, and one line says so. For an imported model or a
--full-train run the "validation" digits may have been seen in training; the file says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import logsumexp, softmax

from digitlab.atomic import atomic_write_json
from digitlab.data.digit_space import digit_space
from digitlab.data.images import to_unit_float
from digitlab.errors import ModelError

REFUSAL_FILE = "refusal.json"
FEATURES = ("energy", "doubt", "knn", "residual", "flatness", "ink")
DIGITS_REFUSED = 0.01  # the share of validation digits the threshold refuses
MIN_VALIDATION = 200  # fewer held-out digits than this cannot place a 1% threshold
SCHEMA = "digitlab.refusal/1"


def features(pixels: np.ndarray, logits: np.ndarray, data_dir: str | Path | None = None) -> np.ndarray:
    """The refusal's features of preprocessed images (see the module docstring).

    Args:
        pixels: (N, 28, 28) float32 in [0, 1].
        logits: (N, 10) the model's logits for them.
        data_dir: Where MNIST lives, for the digit-space measures (default: the usual data directory).

    Returns:
        (N, 6) float64.
    """
    x = np.asarray(pixels, np.float32).reshape(-1, 28, 28)
    logits = np.asarray(logits, np.float64)
    knn, residual = digit_space(data_dir).measures(x)
    ink = x > 0.3
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    height = np.maximum(rows.sum(axis=1), 1)
    width = np.maximum(cols.sum(axis=1), 1)
    return np.stack(
        [
            -logsumexp(logits, axis=1),
            1.0 - softmax(logits, axis=1).max(axis=1),
            knn,
            residual,
            np.abs(np.log(width / height)),
            ink.mean(axis=(1, 2)),
        ],
        axis=1,
    )


@dataclass
class Refusal:
    """A fitted refusal score: `score(pixels, logits)` > `threshold` means "not a digit"."""

    mean: list[float]
    std: list[float]
    coef: list[float]
    intercept: float
    threshold: float
    fitted_on: dict[str, Any] = field(default_factory=dict)
    curve: list[list[float]] = field(default_factory=list)  # [digits refused, non-digits accepted] pairs

    def score(self, pixels: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """(N,) scores; higher is less like a digit."""
        z = (features(pixels, logits) - np.asarray(self.mean)) / np.asarray(self.std)
        return z @ np.asarray(self.coef) + self.intercept

    def refuses(self, pixels: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Which images are refused as "not a digit".

        Args:
            pixels: (N, 28, 28) float32 in [0, 1], preprocessed.
            logits: (N, 10) the model's logits for them.

        Returns:
            (N,) bool, True where the score is over the fitted threshold.
        """
        return self.score(pixels, logits) > self.threshold

    def save(self, run_dir: Path) -> Path:
        """Write RUN/refusal.json atomically and return its path."""
        return atomic_write_json(run_dir / REFUSAL_FILE, {"schema": SCHEMA, "features": FEATURES, **asdict(self)})

    @classmethod
    def load(cls, run_dir: Path) -> Refusal | None:
        """The run's saved refusal, or None when it is missing, unreadable or of another schema (fit again)."""
        try:
            data = json.loads((run_dir / REFUSAL_FILE).read_text())
            if data.get("schema") != SCHEMA:
                return None
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (OSError, ValueError, TypeError, KeyError):
            return None


def fit_refusal(
    logits_fn: Callable[[np.ndarray], np.ndarray],
    validation: np.ndarray,
    seen: str = "",
    data_dir: str | Path | None = None,
    seed: int = 0,
) -> Refusal:
    """Fit the refusal on validation digits and generated non-digits of the fitting families.

    Args:
      logits_fn: (N, 28, 28) float32 in [0, 1] → (N, 10) logits.
      validation: (N, 28, 28) uint8 validation digits: up to 1,000 as they are and up to 700 (half of a small
        split) drawn in the canvas styles of `synthetic.render` train the regression; the threshold refuses 1%
        of the drawn ones.
      seen: why these digits may have been seen in training ("" when they were held out).
      data_dir: where MNIST lives, for the digit-space features (default: the usual data directory).
      seed: the generators' seed.

    Returns:
      The Refusal, with its threshold at 1% of validation digits refused.

    Raises:
      ModelError: fewer than 200 validation digits.
    """
    from sklearn.linear_model import LogisticRegression

    from digitlab.data.preprocess import to_mnist_28x28
    from digitlab.data.synthetic import FIT_NON_DIGIT_FAMILIES, STYLES, fit_non_digit, render

    if len(validation) < MIN_VALIDATION:
        raise ModelError(
            f"the 'not a digit' refusal needs at least {MIN_VALIDATION} validation digits to fit on; this run held out "
            f"{len(validation)} (train with a larger --validation-size)"
        )
    rng = np.random.default_rng(seed)
    n_drawn = min(700, len(validation) // 2)  # 700 of the 5,000 a run usually holds out; half of a small split
    raw = to_unit_float(validation[: min(1000, len(validation) - n_drawn)])
    drawn = [to_mnist_28x28(render(d, STYLES[i % len(STYLES)], rng)) for i, d in enumerate(validation[-n_drawn:])]
    drawn_pixels = np.stack([p.pixels for p in drawn if not p.blank])
    digits = np.concatenate([raw, drawn_pixels])
    negatives = [to_mnist_28x28(fit_non_digit(FIT_NON_DIGIT_FAMILIES[i % 5], rng)) for i in range(600)]
    others = np.stack([p.pixels for p in negatives if not p.blank])
    f_digits = features(digits, logits_fn(digits), data_dir)
    f_others = features(others, logits_fn(others), data_dir)
    mean, std = f_digits.mean(axis=0), f_digits.std(axis=0) + 1e-9
    x = np.concatenate([(f_digits - mean) / std, (f_others - mean) / std])
    y = np.r_[np.zeros(len(f_digits)), np.ones(len(f_others))]
    model = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced").fit(x, y)
    # the threshold comes from the drawn digits alone: what people send looks like them, not like MNIST's scans
    s_digits = model.decision_function((f_digits[len(raw) :] - mean) / std)
    s_others = model.decision_function((f_others - mean) / std)
    threshold = float(np.quantile(s_digits, 1 - DIGITS_REFUSED))
    shares = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
    curve = [[q, float(np.mean(s_others <= np.quantile(s_digits, 1 - q)))] for q in shares]
    return Refusal(
        mean.tolist(),
        std.tolist(),
        model.coef_[0].tolist(),
        float(model.intercept_[0]),
        threshold,
        fitted_on={
            "digits": len(digits),
            "drawn_digits": len(drawn_pixels),
            "non_digits": len(others),
            "families": list(FIT_NON_DIGIT_FAMILIES),
            "digits_refused": DIGITS_REFUSED,
            "non_digits_accepted": float(np.mean(s_others <= threshold)),
            "validation_seen_in_training": seen or None,
        },
        curve=curve,
    )


def refusal_for(loaded, logits_fn, data_dir: str | Path | None = None, log: Callable[[str], Any] = print) -> Refusal:
    """The run's refusal (`RUN/refusal.json`), fitted and saved on first use when it has none.

    Args:
      loaded: the `LoadedModel` (its settings say which validation split it held out).
      logits_fn: (N, 28, 28) float32 → (N, 10) logits, through the runtime that serves it.
      data_dir: where MNIST lives.
      log: where the one line about a first-use fit goes.

    Returns:
      The saved Refusal, or one fitted on the run's validation split (saved into the run when it has a folder).
    """
    from digitlab.data.mnist import splits_for

    if loaded.run_dir is not None:
        saved = Refusal.load(loaded.run_dir)
        if saved is not None:
            return saved
    settings = loaded.settings
    seen = (
        "an imported model may have trained on any MNIST training image"
        if loaded.imported
        else "a --full-train run saw the validation images"
        if settings.get("full_train")
        else ""
    )
    where = loaded.run_dir / REFUSAL_FILE if loaded.run_dir is not None else "memory"
    log(f"fitting the 'not a digit' refusal of {loaded.name} on its validation digits (first use; into {where})")
    splits = splits_for(settings, data_dir)
    refusal = fit_refusal(logits_fn, splits.x_val, seen, data_dir)
    if loaded.run_dir is not None:
        refusal.save(loaded.run_dir)
    return refusal
