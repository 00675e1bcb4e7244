"""The "not a digit" refusal: a score of how unlike any digit a 28×28 is ("several digits" is `verdict.py`'s).

The 10-class model stays as it is (exports, TF Serving and imported models keep their contract); refusing is a
separate score computed from what every runtime has: the model's logits on the 28×28 and the 28×28 itself.
Six features, standardized on the run's validation digits, go through a logistic regression:

- energy, −logsumexp(logits) (Liu et al., "Energy-based out-of-distribution detection", NeurIPS 2020), and
  1 − the maximum softmax probability (Hendrycks & Gimpel, ICLR 2017): the model's own doubt;
- `knn` and `residual` from `digitlab.data.digit_space`: how far the 28×28 is from every MNIST digit;
- |log(width / height)| of the ink's box (MNIST digits are never flat) and the share of the 28×28 that is ink.

The regression is fitted on the run's validation digits (plain and drawn as canvases, photos, …, then preprocessed)
against generated non-digits of *other* families than the benchmark's (`synthetic.outlier_pool`:
`synthetic.FIT_NON_DIGIT_FAMILIES` and Omniglot-like characters of random smooth and straight strokes), and the
threshold is the score that refuses 1% of 2,000 other validation digits, drawn the same way and seen by no fit
(split conformal, `_calibrate`: placed on the fitting digits, it refused more new digits than it said).
`refusal.json` in the run keeps it, with the trade-off curve it was chosen from; a run without one (older runs,
imported models) gets it fitted on first use, and one line says so. For an imported model or a --full-train run the
"validation" digits may have been seen in training; the file says so.

A network with features (`digitlab.models.features`: its penultimate activations, which every runtime answers
beside the logits) adds measures of them, from training digits (`feature_bank.FeatureBank`, kept in
`refusal_bank.npz`):

- `feature_knn`, 1 − the mean cosine similarity of the image's features to its 10 nearest among 2,000 training
  digits' features (1 MB as float16; kNN in feature space after Sun et al., "Out-of-distribution detection with
  deep nearest neighbors", ICML 2022): a seventh input of the regression;
- the Mahalanobis distance of the features to the nearest class mean under one shared covariance, from 10,000
  training digits (Lee et al., "A simple unified framework for detecting out-of-distribution samples and
  adversarial attacks", NeurIPS 2018). It is *not* a regression input: fitted on the pool, the regression gives it
  no weight (the pool does not show where it helps), yet alone it refuses crosses and lines the pool never shows.
  So the score is the larger of the regression's and the distance mapped onto the regression's scale (medians
  matched, and the distance's 99.9% quantile on drawn validation digits, or on plain and drawn ones for a network
  trained with `--served-copies`, onto the regression's 0.5% threshold): an
  image is refused if either finds it unlike a digit, and needs no non-digit like it in the pool
  (`bench/refusal_signals.py`). Checked leaving each of the pool's seven families out of the fit in turn, the
  union refused more of the left-out family (61.5% -> 63.1% at 0.5% of drawn validation digits, distance matched
  at 99.5%); matched at 99.5% it also refused 7 of real-digits-2's 128 good digits instead of 2, so the distance
  speaks only beyond nearly every drawn digit (99.9%; 4 of 128, `bench/refusal.py`);
- for a convolutional network, the same distance of its last convolution's channels averaged over positions (the
  features' second part, `digitlab.models.features`; Lee et al.'s feature ensemble), joined the same way, its
  99.9% quantile taken on the plain and drawn validation digits together: it sees shapes the penultimate layer
  maps among the digits (`bench/refusal_learned.py`: 70.0% → 74.4% of the benchmark's families on validation).

That score's threshold refuses 0.5% of the held-out drawn validation digits. The six-feature refusal is fitted
beside it and kept inside (`plain`): a caller without features (an imported model) uses it, with its 1% threshold.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import logsumexp, softmax

from digitlab.atomic import atomic_write_json
from digitlab.data.digit_space import digit_space
from digitlab.data.images import to_unit_float
from digitlab.errors import ModelError
from digitlab.inference.feature_bank import BANK_DIGITS, FeatureBank

REFUSAL_FILE = "refusal.json"
BANK_FILE = "refusal_bank.npz"
FEATURES = ("energy", "doubt", "knn", "residual", "flatness", "ink")
FEATURE_KNN = "feature_knn"
DIGITS_REFUSED = 0.01  # the share of validation digits the threshold refuses (the six-feature refusal)
DIGITS_REFUSED_WITH_FEATURES = 0.005  # … and with the network's features: what the issue asks of a drawn digit
MIN_VALIDATION = 200  # fewer held-out digits than this cannot place a 1% threshold
THRESHOLD_DIGITS = 2000  # validation digits, drawn, that place the thresholds and no fit sees (0.5%: the 10 highest)
MIN_THRESHOLD_DIGITS = 400  # fewer than this (a small split): the threshold is placed on the fitting digits
MAHALANOBIS_DIGITS = 10_000  # training digits whose features give the class means and the shared covariance
MAHALANOBIS_QUANTILE = 0.999  # the distance's quantile on drawn validation digits mapped onto the threshold
INK_LEVEL = 0.3  # a 28×28 pixel above this is ink, for the flatness and ink-share features
SCHEMA = "digitlab.refusal/7"  # /7: thresholds placed on held-out drawn digits, the brush style among them
# (/6: a run trained on served copies takes its penultimate quantile on all its digits)
# (/5: the last convolution's distance joined; older files are fitted again on first use)


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
    ink = x > INK_LEVEL
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
    """A fitted refusal score: `score(pixels, logits, features)` > `threshold` means "not a digit".

    `names` are its features in order (`FEATURES`, plus `FEATURE_KNN` when it uses the network's features; then
    `bank` holds the training digits' features and `plain` the six-feature refusal a caller without features gets).
    `mahalanobis_map` is [scale, offset]: with features, the score is the larger of the regression's and
    scale · Mahalanobis distance + offset (see the module docstring); None in a refusal without it. `conv_map` the
    same for the last convolution's distance (`FeatureBank.conv_mahalanobis`), None for a network without one.
    """

    mean: list[float]
    std: list[float]
    coef: list[float]
    intercept: float
    threshold: float
    fitted_on: dict[str, Any] = field(default_factory=dict)
    curve: list[list[float]] = field(default_factory=list)  # [digits refused, non-digits accepted] pairs
    names: list[str] = field(default_factory=lambda: list(FEATURES))
    plain: dict[str, Any] | None = None
    mahalanobis_map: list[float] | None = None
    conv_map: list[float] | None = None
    bank: FeatureBank | None = field(default=None, repr=False, compare=False)

    @property
    def uses_features(self) -> bool:
        """Whether the score needs the network's features (else logits and pixels are enough)."""
        return FEATURE_KNN in self.names

    def for_features(self, available: bool) -> Refusal:
        """The refusal a caller gets: this one, or its six-feature `plain` one when the features are not available."""
        if self.uses_features and (not available or self.bank is None) and self.plain is not None:
            return self._plain_refusal
        return self

    @cached_property
    def _plain_refusal(self) -> Refusal:
        return Refusal(**self.plain)

    def score(self, pixels: np.ndarray, logits: np.ndarray, net_features: np.ndarray | None = None) -> np.ndarray:
        """(N,) scores; higher is less like a digit.

        Args:
            pixels: (N, 28, 28) float32 in [0, 1], preprocessed.
            logits: (N, 10) the model's logits for them.
            net_features: (N, D) the network's features for them, or None (the `plain` refusal scores then).

        Returns:
            (N,) float64 scores, against `for_features(...).threshold` (`margins` subtracts it).
        """
        chosen = self.for_features(net_features is not None)
        x = features(pixels, logits)
        if chosen.uses_features:
            x = np.concatenate([x, chosen.bank.distance(net_features)[:, None]], axis=1)
        regression = chosen.regression(x)
        return chosen._with_distance(regression, net_features) if chosen.uses_features else regression

    def regression(self, x: np.ndarray) -> np.ndarray:
        """(N,) the logistic regression's decision values of (N, len(names)) raw features."""
        return ((x - np.asarray(self.mean)) / np.asarray(self.std)) @ np.asarray(self.coef) + self.intercept

    def _with_distance(self, regression: np.ndarray, net_features: np.ndarray) -> np.ndarray:
        """The score from the regression's values: their maximum with the mapped Mahalanobis distances, if used."""
        score = regression
        for mapping, distance in (
            (self.mahalanobis_map, self.bank.mahalanobis),
            (self.conv_map, self.bank.conv_mahalanobis),
        ):
            if mapping is not None:
                score = np.maximum(score, mapping[0] * distance(net_features) + mapping[1])
        return score

    def margins(self, pixels: np.ndarray, logits: np.ndarray, net_features: np.ndarray | None = None) -> np.ndarray:
        """(N,) score − threshold of the refusal used (> 0: "not a digit"); arguments as `score`."""
        return self.score(pixels, logits, net_features) - self.for_features(net_features is not None).threshold

    def refuses(self, pixels: np.ndarray, logits: np.ndarray, net_features: np.ndarray | None = None) -> np.ndarray:
        """Which images are refused as "not a digit".

        Args:
            pixels: (N, 28, 28) float32 in [0, 1], preprocessed.
            logits: (N, 10) the model's logits for them.
            net_features: (N, D) the network's features, or None (the six-feature refusal decides).

        Returns:
            (N,) bool, True where the score is over the threshold of the refusal used.
        """
        return self.margins(pixels, logits, net_features) > 0

    def save(self, run_dir: Path) -> Path:
        """Write RUN/refusal.json (and the bank, RUN/refusal_bank.npz) atomically; returns the JSON's path."""
        if self.bank is not None:
            self.bank.save(run_dir / BANK_FILE)
            (run_dir / "refusal_bank.npy").unlink(missing_ok=True)  # the bank of a /3 refusal, replaced by this one
        fields = {k: v for k, v in asdict(self).items() if k != "bank"}
        return atomic_write_json(run_dir / REFUSAL_FILE, {"schema": SCHEMA, "features": self.names, **fields})

    @classmethod
    def load(cls, run_dir: Path) -> Refusal | None:
        """The run's saved refusal, or None when it is missing, unreadable or of another schema (fit again)."""
        try:
            data = json.loads((run_dir / REFUSAL_FILE).read_text())
            if data.get("schema") != SCHEMA:
                return None
            refusal = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "bank"})
            if refusal.uses_features:
                refusal.bank = FeatureBank.load(run_dir / BANK_FILE)
            return refusal
        except (OSError, ValueError, TypeError, KeyError):
            return None


def split_forward(out: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(logits, features or None) from what a forward function answers: logits alone, or the pair."""
    if isinstance(out, tuple):
        return np.asarray(out[0]), None if out[1] is None else np.asarray(out[1])
    return np.asarray(out), None


def fit_refusal(
    forward_fn: Callable[[np.ndarray], Any],
    validation: np.ndarray,
    seen: str = "",
    data_dir: str | Path | None = None,
    seed: int = 0,
    bank_images: np.ndarray | None = None,
    bank_labels: np.ndarray | None = None,
    penultimate: int | None = None,
    served_copies: bool = False,
) -> Refusal:
    """Fit the refusal on validation digits and generated non-digits of the fitting families.

    Args:
      forward_fn: (N, 28, 28) float32 in [0, 1] → (N, 10) logits, or → (logits, (N, D) features) for a network
        with features (`Predictor.forward`).
      validation: (N, 28, 28) uint8 validation digits: up to 1,000 as they are and up to 700 (half of a small
        split) drawn in the styles of `synthetic.render` train the regression; the threshold refuses 1% (0.5% with
        features) of up to 2,000 others drawn the same way (`fitting_digits`).
      seen: why these digits may have been seen in training ("" when they were held out).
      data_dir: where MNIST lives, for the digit-space features (default: the usual data directory).
      seed: the generators' seed.
      bank_images: (K, 28, 28) uint8 training digits: the first `BANK_DIGITS` features form the kNN bank (with
        features only).
      bank_labels: (K,) their labels: with them, all K give the Mahalanobis distance's class means and covariance.
      penultimate: P, the width of the features' penultimate part (`models.features.penultimate_width`; None: all
        of them), the rest being the last convolution's, which gets a distance of its own.
      served_copies: the network trained on served copies too (`--served-copies`): the penultimate distance's
        quantile is then taken on the plain and drawn digits together (`_join_mahalanobis`).

    Returns:
      The Refusal: with the network's features when `forward_fn` answers them and a bank was given (its
      six-feature refusal inside, as `plain`), else the six-feature one.

    Raises:
      ModelError: fewer than 200 validation digits.
    """
    from digitlab.data.synthetic import FIT_NON_DIGIT_FAMILIES, outlier_pool

    if len(validation) < MIN_VALIDATION:
        raise ModelError(
            f"the 'not a digit' refusal needs at least {MIN_VALIDATION} validation digits to fit on; this run held out "
            f"{len(validation)} (train with a larger --validation-size)"
        )
    raw, drawn_pixels, held_out = fitting_digits(validation, seed)
    digits = np.concatenate([raw, drawn_pixels])
    others = to_unit_float(outlier_pool(800, seed))  # the fitting families and stroke characters, preprocessed
    # (the smooth stroke characters raised the non-digits refused at 0.5% of drawn digits from 59.0% to 63.8%,
    # the straight ones to 70.6%: bench/refusal.py on make run's model; the benchmark's families are never made)
    (logits_d, net_d), (logits_o, net_o) = split_forward(forward_fn(digits)), split_forward(forward_fn(others))
    logits_h, net_h = split_forward(forward_fn(held_out)) if len(held_out) else (None, None)
    f_digits, f_others = features(digits, logits_d, data_dir), features(others, logits_o, data_dir)
    about = {
        "digits": len(digits),
        "drawn_digits": len(drawn_pixels),
        "non_digits": len(others),
        "families": [*FIT_NON_DIGIT_FAMILIES, "smooth stroke characters", "straight stroke characters"],
        "validation_seen_in_training": seen or None,
    }
    plain = _fit(f_digits, f_others, len(raw), DIGITS_REFUSED, list(FEATURES), about)
    _calibrate(plain, (held_out, logits_h, None), (others, logits_o, None))
    if net_d is None or net_o is None or bank_images is None:
        return plain
    bank_features = split_forward(forward_fn(to_unit_float(bank_images)))[1]
    bank = FeatureBank.of(bank_features, bank_labels, penultimate=penultimate)
    with_knn = [
        np.concatenate([f, bank.distance(n)[:, None]], axis=1) for f, n in ((f_digits, net_d), (f_others, net_o))
    ]
    about = {**about, "bank_digits": min(len(bank_images), BANK_DIGITS), "feature_width": int(net_d.shape[1])}
    about["penultimate_width"] = int(bank.bank.shape[1])
    refusal = _fit(*with_knn, len(raw), DIGITS_REFUSED_WITH_FEATURES, [*FEATURES, FEATURE_KNN], about)
    refusal.plain = {k: v for k, v in asdict(plain).items() if k != "bank"}
    refusal.bank = bank
    if bank.whitening is not None:
        refusal.fitted_on["mahalanobis_digits"] = len(bank_images)
        _join_mahalanobis(refusal, with_knn[0][len(raw) :], net_d, len(raw), (with_knn[1], net_o), served_copies)
    _calibrate(refusal, (held_out, logits_h, net_h), (others, logits_o, net_o))
    return refusal


def fitting_digits(validation: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The digits `fit_refusal` fits on, and those its thresholds are placed on.

    Args:
        validation: (N, 28, 28) uint8 validation digits, N ≥ 2.
        seed: the renderer's seed.

    Returns:
        (plain, drawn, held out): float32 (N₁, 28, 28), (N₂, 28, 28) and (N₃, 28, 28) in [0, 1]. Plain: up to the
        first 1,000 validation digits as they are; drawn: up to the last 700 in the styles of `synthetic.render`,
        preprocessed as the page does (a blank result left out); held out: up to `THRESHOLD_DIGITS` of those
        between, drawn the same way, seen by no fit (empty when fewer than `MIN_THRESHOLD_DIGITS` are left).
    """
    from digitlab.data.preprocess import to_mnist_28x28
    from digitlab.data.synthetic import STYLES, render

    rng = np.random.default_rng(seed)
    n_drawn = min(700, len(validation) // 2)  # 700 of the 5,000 a run usually holds out; half of a small split
    n_raw = min(1000, len(validation) - n_drawn)
    raw = to_unit_float(validation[:n_raw])

    def drawn(digits: np.ndarray) -> np.ndarray:
        processed = (to_mnist_28x28(render(d, STYLES[i % len(STYLES)], rng)) for i, d in enumerate(digits))
        return np.array([p.pixels for p in processed if not p.blank], np.float32).reshape(-1, 28, 28)

    fitting = drawn(validation[len(validation) - n_drawn :])
    between = validation[n_raw : len(validation) - n_drawn][:THRESHOLD_DIGITS]
    return raw, fitting, drawn(between if len(between) >= MIN_THRESHOLD_DIGITS else between[:0])


def _calibrate(refusal: Refusal, digits: tuple, others: tuple) -> None:
    """Place the refusal's threshold on held-out drawn digits (`digits`: pixels, logits, features or None).

    Split conformal prediction (Vovk, Gammerman & Shafer, "Algorithmic Learning in a Random World", 2005;
    Angelopoulos & Bates, "A gentle introduction to conformal prediction", 2021): a threshold at the (1 − q)
    quantile of scores the fit never saw refuses about q of new digits drawn the same way. Placed on the digits the
    regression was fitted on (and the distances mapped on), it refused 0.76% of 3,300 other drawn validation digits
    instead of 0.5%. `others` (the pool's pixels, logits, features) give the trade-off curve. Without held-out
    digits (a small validation split) the in-sample threshold stays, and `fitted_on` says so.
    """
    pixels, logits, net = digits
    if not len(pixels):
        refusal.fitted_on["threshold_digits"] = "in-sample: too few validation digits to hold some out"
        return
    scores = refusal.score(pixels, logits, net)
    refusal.threshold, refusal.curve, accepted = _place_threshold(
        scores, refusal.score(*others), refusal.fitted_on["digits_refused"]
    )
    refusal.fitted_on["non_digits_accepted"] = accepted
    refusal.fitted_on["threshold_digits"] = len(pixels)


def _join_mahalanobis(
    refusal: Refusal,
    x_drawn: np.ndarray,
    net_digits: np.ndarray,
    n_raw: int,
    others: tuple[np.ndarray, np.ndarray],
    served_copies: bool = False,
) -> None:
    """Map the Mahalanobis distances onto the regression's scale and place the threshold of their maximum.

    `x_drawn` are the drawn digits' regression inputs, `net_digits` every fitting digit's network features (the
    `n_raw` plain ones, then the drawn), `others` (regression inputs, network features) of the pool. Each distance
    is mapped alone, medians matched on the drawn digits and its `MAHALANOBIS_QUANTILE` onto the regression's
    threshold: the penultimate one's quantile on the drawn digits, the convolution's on the plain and drawn ones
    together (chosen on validation: on the drawn ones alone it refused 3.4% of unseen plain validation digits
    instead of 2.9%, for 75.8% of the benchmark families instead of 74.4%; the penultimate one on both refused 47%
    of crosses, not 88%).

    A network trained on served copies too (`served_copies`) packs drawn digits tighter, and its penultimate
    distance's 99.9% quantile on them alone refused people's digits drawn otherwise (`bench/served_copies.py`): its
    quantile is taken on the plain and drawn digits together, as the convolution's (on validation, over 3 seeds:
    drawn validation digits refused at the run's threshold 0.72% -> 0.48%, geometrically re-written validation digits
    refused by that distance 0.69% -> 0.11%, non-digits refused at 0.5% of drawn digits 80.3% -> 79.1%; for a network
    trained on MNIST alone the same change costs 3 points of non-digits, 75.6% -> 72.6%, so it keeps the drawn ones).
    """
    drawn = (x_drawn, net_digits[n_raw:])
    s_drawn = refusal.regression(x_drawn)
    refused = refusal.fitted_on["digits_refused"]

    def mapped(m_drawn: np.ndarray, m_quantile: np.ndarray) -> list[float]:
        spread = np.quantile(m_quantile, MAHALANOBIS_QUANTILE) - np.median(m_drawn)
        scale = (np.quantile(s_drawn, 1 - refused) - np.median(s_drawn)) / max(spread, 1e-12)
        return [float(scale), float(np.median(s_drawn) - scale * np.median(m_drawn))]

    m_digits = refusal.bank.mahalanobis(net_digits)
    refusal.mahalanobis_map = mapped(m_digits[n_raw:], m_digits if served_copies else m_digits[n_raw:])
    conv = refusal.bank.conv_mahalanobis(net_digits)
    refusal.conv_map = None if conv is None else mapped(conv[n_raw:], conv)
    drawn_scores, other_scores = (refusal._with_distance(refusal.regression(x), net) for x, net in (drawn, others))
    refusal.threshold, refusal.curve, accepted = _place_threshold(drawn_scores, other_scores, refused)
    refusal.fitted_on["non_digits_accepted"] = accepted


def _fit(
    f_digits: np.ndarray, f_others: np.ndarray, n_raw: int, refused: float, names: list[str], about: dict[str, Any]
) -> Refusal:
    """A logistic regression of digits (0) against non-digits (1) on standardized features.

    Its threshold refuses `refused` of the drawn digits (those after the first `n_raw`).
    """
    from sklearn.linear_model import LogisticRegression

    mean, std = f_digits.mean(axis=0), f_digits.std(axis=0) + 1e-9
    x = np.concatenate([(f_digits - mean) / std, (f_others - mean) / std])
    y = np.r_[np.zeros(len(f_digits)), np.ones(len(f_others))]
    model = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced").fit(x, y)
    # the threshold comes from the drawn digits alone: what people send looks like them, not like MNIST's scans
    s_digits = model.decision_function((f_digits[n_raw:] - mean) / std)
    s_others = model.decision_function((f_others - mean) / std)
    threshold, curve, accepted = _place_threshold(s_digits, s_others, refused)
    fitted_on = {**about, "digits_refused": refused, "non_digits_accepted": accepted}
    coef, intercept = model.coef_[0].tolist(), float(model.intercept_[0])
    return Refusal(mean.tolist(), std.tolist(), coef, intercept, threshold, fitted_on, curve, names)


def _place_threshold(
    s_digits: np.ndarray, s_others: np.ndarray, refused: float
) -> tuple[float, list[list[float]], float]:
    """(the score refusing `refused` of the drawn digits, the trade-off curve, the non-digits it accepts)."""
    threshold = float(np.quantile(s_digits, 1 - refused))
    shares = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
    curve = [[q, float(np.mean(s_others <= np.quantile(s_digits, 1 - q)))] for q in shares]
    return threshold, curve, float(np.mean(s_others <= threshold))


def refusal_for(loaded, forward_fn, data_dir: str | Path | None = None, log: Callable[[str], Any] = print) -> Refusal:
    """The run's refusal (`RUN/refusal.json`), fitted and saved on first use when it has none.

    Args:
      loaded: the `LoadedModel` (its settings say which validation split it held out).
      forward_fn: (N, 28, 28) float32 → (N, 10) logits, or → (logits, features) for a network with features,
        through the runtime that serves it.
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
    from digitlab.models.features import penultimate_width

    settings, seen = loaded.settings, loaded.validation_seen
    where = loaded.run_dir / REFUSAL_FILE if loaded.run_dir is not None else "memory"
    log(f"fitting the 'not a digit' refusal of {loaded.name} on its validation digits (first use; into {where})")
    splits = splits_for(settings, data_dir)
    train = slice(0, MAHALANOBIS_DIGITS)
    penultimate = None if loaded.imported else penultimate_width(loaded.model)
    bank = (splits.x_train[train], splits.y_train[train], penultimate)
    copies = bool(settings.get("served_copies"))
    refusal = fit_refusal(forward_fn, splits.x_val, seen, data_dir, 0, *bank, served_copies=copies)
    if loaded.run_dir is not None:
        refusal.save(loaded.run_dir)
    return refusal
