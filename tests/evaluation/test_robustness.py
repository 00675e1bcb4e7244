"""The robustness scoring (digitlab.evaluation.robustness) on a real trained model and real digits."""

from __future__ import annotations

import numpy as np

from digitlab.data.corruptions import CORRUPTIONS
from digitlab.evaluation.robustness import accuracy_alone, mnist_c, sklearn_digits
from digitlab.models.forward import predict_logits
from digitlab.models.saved import load_model


def test_mnist_c_scores_every_corruption_both_ways(tiny_cnn, mnist):
    model = load_model(tiny_cnn).model

    def logits(x):
        return predict_logits(model, x)

    x, y = mnist.x_test[:60], mnist.y_test[:60]
    seen = []
    result = mnist_c(logits, x, y, preprocess_limit=20, progress=seen.append)
    assert seen == ["clean", *CORRUPTIONS] and list(result["corruptions"]) == list(CORRUPTIONS)
    assert result["clean"]["alone"] == accuracy_alone(logits, x, y) > 0.5  # the clean row is plain accuracy
    for row in result["corruptions"].values():
        assert 0.0 <= row["alone"] <= 1.0 and 0.0 <= row["preprocessed"] <= 1.0 and 0.0 <= row["blank"] <= 1.0
    assert result["corruptions"]["brightness"]["blank"] == 0.0  # a light digit on grey paper is still a digit
    assert result["mean_alone"] == np.mean([r["alone"] for r in result["corruptions"].values()])
    assert (result["examples"], result["preprocessed_examples"]) == (60, 20)


def test_sklearn_digits_are_upscaled_white_on_black():
    images, labels = sklearn_digits(size=64)
    assert len(images) == len(labels) == 1797 and images[0].shape == (64, 64) and images[0].dtype == np.uint8
    assert np.mean([img[0, 0] for img in images]) < 10 and max(img.max() for img in images) == 255
