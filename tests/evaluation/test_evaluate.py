"""Metric functions on hand-computed cases, and the full report on a real trained model."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from digitlab.cli import main
from digitlab.errors import ModelError
from digitlab.evaluation.evaluate import evaluate_model
from digitlab.evaluation.metrics import (
    brier_score,
    classification_metrics,
    expected_calibration_error,
    most_confused_pairs,
    reliability_bins,
)
from digitlab.models.calibration import fit_temperature, negative_log_likelihood
from digitlab.models.saved import load_model


def _probs_with_confidence(confidence: float, predicted: np.ndarray) -> np.ndarray:
    """Probabilities whose top class is `predicted` with the given confidence, the rest spread evenly."""
    probs = np.full((len(predicted), 10), (1 - confidence) / 9)
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def test_ece_of_a_perfectly_calibrated_predictor_is_zero():
    labels = np.zeros(1000, dtype=int)
    predicted = np.zeros(1000, dtype=int)
    predicted[800:] = 1  # 80% right at 80% confidence
    assert expected_calibration_error(_probs_with_confidence(0.8, predicted), labels) == pytest.approx(0, abs=1e-12)


def test_ece_of_an_overconfident_predictor():
    labels = np.zeros(100, dtype=int)
    predicted = np.zeros(100, dtype=int)
    predicted[50:] = 1  # 50% right at 99% confidence: ECE = |0.5 - 0.99|
    assert expected_calibration_error(_probs_with_confidence(0.99, predicted), labels) == pytest.approx(0.49)


def test_ece_two_bins_by_hand():
    # 4 examples at confidence 0.95 (3 right) and 6 at 0.55 (3 right):
    # ECE = 0.4 * |0.75 - 0.95| + 0.6 * |0.5 - 0.55| = 0.08 + 0.03
    labels = np.zeros(10, dtype=int)
    probs = np.vstack(
        [
            _probs_with_confidence(0.95, np.array([0, 0, 0, 1])),
            _probs_with_confidence(0.55, np.array([0] * 3 + [2] * 3)),
        ]
    )
    assert expected_calibration_error(probs, labels) == pytest.approx(0.11)
    bins = reliability_bins(probs, labels)
    assert bins["count"][14] == 4 and bins["count"][8] == 6 and sum(bins["count"]) == 10


def test_nll_brier_topk_by_hand():
    logits = np.log(np.array([[0.7, 0.2, 0.1] + [1e-12] * 7, [0.1, 0.6, 0.3] + [1e-12] * 7]))
    labels = np.array([0, 2])
    assert negative_log_likelihood(logits, labels) == pytest.approx(-(np.log(0.7) + np.log(0.3)) / 2, rel=1e-6)
    probs = np.exp(logits)
    expected_brier = ((0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.6**2 + 0.7**2)) / 2
    assert brier_score(probs, labels) == pytest.approx(expected_brier, rel=1e-6)
    assert classification_metrics(logits, labels)["top2_accuracy"] == 1.0  # 2 is second in the second row
    assert classification_metrics(logits, np.array([2, 2]))["top2_accuracy"] == 0.5  # 2 is third in the first


def test_classes_with_zero_support_and_confused_pairs():
    labels = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    logits = np.eye(10)[predicted] * 5
    m = classification_metrics(logits, labels)
    assert m["per_class"]["7"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0}
    assert m["per_class"]["1"]["precision"] == pytest.approx(2 / 3) and m["per_class"]["1"]["recall"] == pytest.approx(
        2 / 3
    )
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert np.array(m["confusion_matrix"]).sum() == 6
    assert most_confused_pairs(np.array(m["confusion_matrix"])) == [
        {"true": 0, "predicted": 1, "count": 1},
        {"true": 1, "predicted": 0, "count": 1},
    ]


def test_temperature_recovers_a_known_scale():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(5000, 10)) * 3
    labels = np.array([rng.choice(10, p=np.exp(r) / np.exp(r).sum()) for r in true_logits])
    t = fit_temperature(true_logits * 2.5, labels)  # over-confident by 2.5×
    assert t == pytest.approx(2.5, rel=0.1)


@pytest.fixture(scope="module")
def evaluation(trained_run):
    return evaluate_model(trained_run)


def test_report_on_a_real_model(evaluation, trained_run):
    import jsonschema

    out = evaluation.out_dir
    assert out == trained_run / "report"
    for name in (
        "metrics.json",
        "report.html",
        "curves.png",
        "confusion.png",
        "reliability.png",
        "misclassified.png",
        "f1.png",
    ):
        assert (out / name).stat().st_size > 1000, name
    metrics = json.loads((out / "metrics.json").read_text())
    schema = json.loads(resources.files("digitlab.evaluation").joinpath("metrics.schema.json").read_text())
    jsonschema.validate(metrics, schema)
    assert metrics["examples"] == 10000 and metrics["accuracy"] > 0.95
    assert sum(v["support"] for v in metrics["per_class"].values()) == 10000
    page = (out / "report.html").read_text()
    # 5 plots + 5 model-level views of "Inside the model" + 15 rows of robustness examples (one per corruption, in
    # its row of the table) + the refusal curve, all embedded: the page opens without a server
    assert page.count("data:image/png;base64,") == 26 and "<script" not in page and 'src="http' not in page
    robustness = metrics["robustness"]
    for name in robustness["corruptions"]:  # each row of examples names its corruption
        assert f'alt="{name.replace("_", " ")}: examples' in page, name
    assert "<h2>Robustness</h2>" in page and (robustness["examples"], robustness["preprocessed_examples"]) == (500, 100)
    assert robustness["clean"]["alone"] > 0.95 and robustness["mean_alone"] < robustness["clean"]["alone"]
    assert "<h2>Not a digit</h2>" in page and (out / "refusal_curve.png").stat().st_size > 1000
    assert "Classification report" in page and "Run configuration" in page and "Inside the model" in page
    for name in ("filters.png", "patches.png", "embedding.png", "class_attribution.png", "confused.png"):
        assert (out / "inside" / name).stat().st_size > 1000, name
    faith = json.loads((out / "inside" / "faithfulness.json").read_text())
    # Completeness (Sundararajan et al. 2017) at 64 Riemann steps: typically ~0.1%; the worst of the digits depends on
    # the trained weights (0.049 and 0.065 for two one-ulp-different schedules), hence a looser bound on the max.
    assert faith["ig_completeness_median"] < 0.01 and faith["ig_completeness_max"] < 0.1
    assert all(d["ratio"] < 1 for d in faith["deletion"].values())
    assert "34,826" in page  # the model table's parameter column (the old text summary cut it off)


def test_temperature_lowers_validation_nll_and_keeps_predictions(evaluation, trained_run):
    cal = evaluation.metrics["calibration"]
    assert cal["validation_nll_after"] < cal["validation_nll_before"]
    stored = json.loads((trained_run / "calibration.json").read_text())
    assert stored["temperature"] == pytest.approx(cal["after"]["temperature"])
    assert load_model(trained_run).temperature == pytest.approx(stored["temperature"])
    # the predicted class (hence accuracy and the confusion matrix) does not depend on T
    before, after = cal["before"], cal["after"]
    assert before["temperature"] == 1.0 and after["temperature"] != 1.0
    from digitlab.data.mnist import load_mnist
    from digitlab.models.forward import predict_logits

    mnist = load_mnist()
    logits = predict_logits(load_model(trained_run).model, mnist.x_test[:2000])
    assert np.array_equal((logits / after["temperature"]).argmax(1), logits.argmax(1))


def test_compare_runs_table(evaluation, trained_run, tmp_path, capsys):
    assert main(["compare", str(trained_run), str(trained_run / "model.keras"), "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "| run | model | accuracy" in out and out.count("| cnn |") == 2
    rows = json.loads((tmp_path / "cmp.json").read_text())
    assert len(rows) == 2 and rows[0]["accuracy"] == pytest.approx(evaluation.metrics["accuracy"])


def test_missing_and_corrupt_models_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(ModelError, match="no model at"):
        load_model(tmp_path / "nothing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"PK\x03\x04 this is not a keras archive")
    assert main(["evaluate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("digitlab: error: cannot load") and len(err.strip().splitlines()) == 1, err
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "no model at" in capsys.readouterr().err


def test_evaluate_writes_calibration_only_when_missing_or_asked(trained_run, tmp_path):
    """What `serve` answers changes only on the first evaluation or on `--calibrate`, and `compare` never."""
    import shutil

    from digitlab.evaluation.compare import compare_runs

    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("report", "calibration.json", "export"))
    path = run / "calibration.json"
    compare_runs([run])
    assert not path.exists()  # compare evaluates, but leaves the model as it was

    first = evaluate_model(run, report=False)
    fitted = first.metrics["calibration"]["after"]["temperature"]
    assert json.loads(path.read_text())["temperature"] == pytest.approx(fitted) and "wrote" in first.calibration

    path.write_text(json.dumps({"temperature": 2.0}))  # e.g. another tool's calibration
    again = evaluate_model(run, report=False)
    assert json.loads(path.read_text())["temperature"] == 2.0 and "kept" in again.calibration
    assert load_model(run, network=False).temperature == 2.0

    evaluate_model(run, report=False, calibrate=True)
    assert json.loads(path.read_text())["temperature"] == pytest.approx(fitted)
