"""Are the attributions faithful? Three checks that can fail, on real test digits.

- Completeness (Integrated Gradients): the map's sum against score(x) − score(baseline); relative error.
- Deletion: remove ink (set to 0) in the order a map ranks it, most-attributed first, and follow the target
  class's probability. A faithful map makes it fall faster than removing the same ink in random order:
  the ratio of the two curves' areas is below 1 (lower is better).
- Model randomisation (Adebayo et al., "Sanity checks for saliency maps"): the same method on a copy of the
  model with its weights shuffled must give a different map (Spearman rank correlation of |attribution|
  near 0), or the map shows the input, not the model. Measured on the ink pixels, where a map has
  something to say, and on all 784: on the black background Integrated Gradients is 0 for any model
  (x − x′ = 0 there), so the all-pixel number mostly measures the input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import softmax
from scipy.stats import spearmanr

from digitlab.explain.engine import Explainer

FRACTIONS = np.linspace(0.0, 1.0, 11)
INK = 0.1  # pixels above this are ink


def completeness(explainer: Explainer, images: np.ndarray, steps: int = 64, baseline: str = "black") -> np.ndarray:
    """Relative completeness error of Integrated Gradients for each image (target: its prediction).

    Args:
        explainer: the model's explainer.
        images: (N, 28, 28) float32 in [0, 1].
        steps: path steps.
        baseline: "black", "blur" or "grey".

    Returns:
        (N,) |Σ attributions − (score(x) − score(x′))| / |score(x) − score(x′)|.
    """
    errors = []
    for x in images:
        target = int(explainer.logits(x)[0].argmax())
        ig = explainer.integrated_gradients(x, explainer.score_weights(target), baseline, steps)
        errors.append(ig["completeness"]["relative_error"])
    return np.array(errors)


def deletion_curve(explainer: Explainer, x: np.ndarray, target: int, order: np.ndarray) -> np.ndarray:
    """The target's probability as ink is removed in the given order.

    Args:
        explainer: the model's explainer.
        x: one (28, 28) float32 input in [0, 1].
        target: the class followed, 0-9.
        order: flat pixel indices of the ink, most important first.

    Returns:
        (len(FRACTIONS),) probabilities after removing (setting to 0) the first fraction f of `order`.
    """
    copies = np.repeat(x[None].astype(np.float32), len(FRACTIONS), axis=0).reshape(len(FRACTIONS), -1)
    for i, f in enumerate(FRACTIONS):
        copies[i, order[: round(float(f) * len(order))]] = 0.0
    return softmax(explainer.logits(copies.reshape(-1, 28, 28)), axis=1)[:, target]


def deletion(
    explainer: Explainer, images: np.ndarray, method: str, seed: int = 0, randoms: int = 3, **options: Any
) -> dict[str, float]:
    """The deletion test (Petsiuk et al. 2018, "RISE"): removing the most-attributed ink first should hurt most.

    Does removing ink in the map's order lower the prediction faster than removing it at random?

    Args:
        explainer: the model's explainer.
        images: (N, 28, 28) float32 in [0, 1].
        method: one of `METHODS`.
        seed: seed of the random orders.
        randoms: random orders per image.
        **options: passed to `attribution` (e.g. baseline, steps).

    Returns:
        `auc` (mean area under the method's curve), `random_auc`, and `ratio` = auc / random_auc (< 1: better
        than random; lower is better).
    """
    rng = np.random.default_rng(seed)
    ranked, random = [], []
    for x in images:
        target = int(explainer.logits(x)[0].argmax())
        values = explainer.attribution(x, method, target, **options)["values"].ravel()
        ink = np.flatnonzero(x.ravel() > INK)
        order = ink[np.argsort(-values[ink], kind="stable")]
        ranked.append(np.trapezoid(deletion_curve(explainer, x, target, order), FRACTIONS))
        random += [
            np.trapezoid(deletion_curve(explainer, x, target, rng.permutation(ink)), FRACTIONS) for _ in range(randoms)
        ]
    return {
        "auc": float(np.mean(ranked)),
        "random_auc": float(np.mean(random)),
        "ratio": float(np.mean(ranked) / np.mean(random)),
    }


def shuffled_copy(model, seed: int = 0):
    """The same architecture with every weight tensor's values permuted: the model's knowledge destroyed.

    Args:
        model: a Keras model.
        seed: the permutation's seed.

    Returns:
        A new Keras model.
    """
    import keras

    copy = keras.models.clone_model(model)
    rng = np.random.default_rng(seed)
    copy.set_weights([rng.permutation(w.ravel()).reshape(w.shape) for w in model.get_weights()])
    return copy


def randomisation(model, images: np.ndarray, method: str, **options: Any) -> dict[str, float]:
    """The model randomisation test (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

    Args:
        model: a Keras model.
        images: (N, 28, 28) float32 in [0, 1].
        method: one of `METHODS`.
        **options: passed to `attribution`.

    Returns:
        The median Spearman correlation of |attribution| between the model and its weight-shuffled copy, on
        the ink pixels (`ink`) and on all pixels (`all`); low means the map depends on what the model learned.
    """
    trained, shuffled = Explainer(model), Explainer(shuffled_copy(model))
    on_ink, on_all = [], []
    for x in images:
        target = int(trained.logits(x)[0].argmax())
        a = np.abs(trained.attribution(x, method, target, **options)["values"]).ravel()
        b = np.abs(shuffled.attribution(x, method, target, **options)["values"]).ravel()
        ink = x.ravel() > INK
        on_ink.append(spearmanr(a[ink], b[ink]).statistic)
        on_all.append(spearmanr(a, b).statistic)
    return {"ink": float(np.median(np.nan_to_num(on_ink))), "all": float(np.median(np.nan_to_num(on_all)))}
