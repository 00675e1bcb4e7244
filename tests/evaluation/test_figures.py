"""Plot helpers draw on their own `Figure` objects: a notebook's backend is the same after calling them."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

INLINE = "module://matplotlib_inline.backend_inline"


@pytest.fixture
def inline_backend():
    """A notebook's inline backend for the duration of the test, restored afterwards."""
    pytest.importorskip("matplotlib_inline")
    before = matplotlib.get_backend()
    matplotlib.use(INLINE)
    yield INLINE
    matplotlib.use(before)


def test_plot_helpers_leave_the_backend_alone(inline_backend, tmp_path):
    from digitlab.data.mnist import save_sample_grid
    from digitlab.evaluation import report
    from digitlab.explain.graph import LayerActivation
    from digitlab.explain.render import panel
    from digitlab.notebook import display

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    labels = np.arange(40) % 10
    logits = rng.normal(size=(40, 10)).astype(np.float32)
    confusion = np.eye(10, dtype=int) * 4
    per_class = {str(c): {"f1-score": 0.9 + c / 100} for c in range(10)}
    history = [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4}]

    assert report.plot_curves(history, tmp_path / "curves.png").stat().st_size > 1000
    report.plot_confusion(confusion, tmp_path / "confusion.png")
    report.plot_reliability(logits, labels, 1.5, tmp_path / "reliability.png")
    report.plot_misclassified(images, labels, logits, tmp_path / "misclassified.png")
    report.plot_f1(per_class, tmp_path / "f1.png")
    save_sample_grid(images, labels, tmp_path / "samples.png", per_class=3)
    display.sample_grid(images, labels, per_class=2)
    layer = LayerActivation(name="logits", kind="logits", values=logits[0])
    maps = {"ig": {"values": rng.normal(size=(28, 28)), "target": 3, "contrast": None}}
    fig = panel(images[0] / 255, [layer], maps, "a title")
    assert fig.axes  # drawn, on a Figure nobody registered with pyplot
    assert matplotlib.get_backend() == inline_backend


def test_report_template_escapes_what_a_run_names():
    """A model name or imported contract with markup is shown as text: the template escapes it."""
    from digitlab.evaluation.metrics import calibration_metrics, classification_metrics
    from digitlab.evaluation.report import _temperature_note, _templates

    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(50, 10)), rng.integers(0, 10, 50)
    calibration = {
        "before": calibration_metrics(logits, labels),
        "after": calibration_metrics(logits, labels, 1.3),
        "temperature_fitted_on": "nothing: an imported model may have trained on any MNIST training image",
        "validation_nll_before": 1.0,
        "validation_nll_after": 1.0,
    }
    metrics = {
        "model": "<script>x</script>",
        "split": "test",
        "examples": 50,
        "model_file": "m.onnx",
        "contract": {"format": "onnx", "assumed": "inputs <in [0, 1]>"},
        "calibration": calibration,
        **classification_metrics(logits, labels),
    }
    page = (
        _templates()
        .get_template("report.html.j2")
        .render(
            m=metrics,
            before=calibration["before"],
            after=calibration["after"],
            temperature=_temperature_note(calibration),
            averages={"macro avg": metrics["macro_avg"]},
            figures=[],
            config="{}",
            layers=None,
            inside={"unavailable": "no <conv> layer"},
            refusal={"unavailable": "too few"},
        )
    )
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "inputs &lt;in [0, 1]&gt;" in page and "no &lt;conv&gt; layer" in page
    assert "No temperature fitted (an imported model" in page and "its layers are not listed here" in page
