"""`digitlab import` on model files in the formats people publish MNIST classifiers in (examples/
published_models.py builds each from one small trained net): every one imports with no flags, quietly, and
answers as the file itself does under its own input convention."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from digitlab.cli import main
from digitlab.errors import one_line
from digitlab.models import importing

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _published_models():
    spec = importlib.util.spec_from_file_location(
        "published_models", Path(__file__).parents[2] / "examples" / "published_models.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


published = _published_models()

# name → (scale, outputs, signature) the import must find
KINDS = {
    "mnist-8.onnx": ("byte", "logits", None),
    "external.onnx": ("unit", "logits", None),
    "symmetric.onnx": ("symmetric", "logits", None),
    "normalised.onnx": ("unit", "logits", None),
    "slots_savedmodel": ("unit", "probabilities", "serving_default"),
    "tf_keras_savedmodel": ("unit", "probabilities", "serving_default"),
    "tf_serving_tutorial": ("unit", "probabilities", "predict_images"),
    "keras22.h5": ("unit", "probabilities", None),
}
assert set(KINDS) == set(published.BUILDERS)  # a new kind of file gets its expectations here


@pytest.fixture(scope="module")
def weights(mnist):
    """The dense net every file carries (784 → 64 → 10, 2 epochs on 20,000 digits: a few seconds)."""
    return published.dense_weights(mnist.x_train[:20000], mnist.y_train[:20000])


@pytest.fixture(scope="module")
def files(weights, tmp_path_factory):
    root = tmp_path_factory.mktemp("published")
    out = {}
    for name, build in published.BUILDERS.items():
        if name in published.NEEDS_TF_KERAS and not _has_tf_keras():
            continue
        out[name] = build(weights, root / name)
    return out


def _has_tf_keras() -> bool:
    return importlib.util.find_spec("tf_keras") is not None


@pytest.fixture(scope="module")
def test_digits(mnist):
    return mnist.x_test[:1000].astype(np.float32) / 255.0, mnist.y_test[:1000].astype(np.int64)


@pytest.mark.parametrize("name", list(KINDS))
def test_imports_with_no_flags_quietly_and_answers_as_the_file_does(name, files, weights, test_digits, tmp_path, capfd):
    from digitlab.models.forward import predict_logits
    from digitlab.models.saved import load_model

    if name not in files:
        pytest.skip("tf_keras (Keras 2) is not installed: it writes this kind of file")
    scale, outputs, signature = KINDS[name]
    capfd.readouterr()
    assert main(["import", str(files[name]), "--out", str(tmp_path / "run")]) == 0
    said = capfd.readouterr()
    quiet = said.err + said.out
    assert "Warning" not in quiet and "WARNING" not in quiet and "Traceback" not in quiet, quiet
    contract = json.loads((tmp_path / "run" / "contract.json").read_text())
    assert (contract["scale"], contract["invert"], contract["outputs"]) == (scale, False, outputs)
    assert contract["signature"] == signature
    x, y = test_digits
    ours = predict_logits(load_model(tmp_path / "run", log=lambda *_: None).model, x).argmax(1)
    own = weights.logits(x).argmax(1)  # what the file's own code answers (the same weights, its convention)
    assert np.mean(ours == own) >= 0.998, f"{np.mean(ours == own):.4f} agreement"
    assert abs(np.mean(ours == y) - np.mean(own == y)) <= 0.0015


def test_the_onnx_zoo_file_evaluates_to_its_own_test_accuracy(files, weights, mnist, tmp_path, capsys):
    """The IR-3 file that imported "successfully" and then failed in evaluate, predict and serve."""
    from digitlab.evaluation.evaluate import evaluate_model

    run = tmp_path / "mnist-8"
    assert main(["import", str(files["mnist-8.onnx"]), "--out", str(run)]) == 0
    accuracy = evaluate_model(run, report=False).metrics["accuracy"]  # the report's figures are tested elsewhere
    own = np.mean(weights.logits(mnist.x_test / 255.0).argmax(1) == mnist.y_test)
    assert abs(accuracy - own) < 1e-4
    own_file = published.own_onnx_logits(files["mnist-8.onnx"], mnist.x_test[:50] / 255.0, 255.0, 0.0)
    assert np.array_equal(own_file.argmax(1), weights.logits(mnist.x_test[:50] / 255.0).argmax(1))


def test_external_weights_travel_with_the_run_and_a_missing_one_is_one_line(weights, tmp_path, capsys):
    from digitlab.models.saved import load_model

    path = published.onnx_external_data(weights, tmp_path / "model.onnx")
    side = tmp_path / "model.onnx.data"
    assert side.is_file() and path.stat().st_size < side.stat().st_size  # the weights are in the side file
    assert main(["import", str(path), "--out", str(tmp_path / "run")]) == 0
    side.unlink()
    assert load_model(tmp_path / "run", log=lambda *_: None).model.logits(np.zeros((2, 28, 28, 1))).shape == (2, 10)
    assert main(["import", str(path), "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err.strip()
    assert "model.onnx.data" in err and "copy" in err and "\n" not in err, err
    assert not (tmp_path / "again").exists()


def test_a_tie_between_equivalent_scales_is_settled_and_said(files, tmp_path):
    run = importing.import_model(files["normalised.onnx"], tmp_path / "run", log=lambda *_: None)
    evidence = json.loads((run / "contract.json").read_text())["evidence"]
    assert "tie" in evidence["scale_and_polarity"] and "same answer" in evidence["scale_and_polarity"]
    assert "tie" in (run / "summary.txt").read_text()


def test_signatures_are_listed_when_the_chosen_one_is_not_a_digit_classifier(files, tmp_path, capsys):
    path = str(files["tf_serving_tutorial"])
    assert main(["import", path, "--signature", "serving_default", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert "tf.Example" in err and "predict_images(images: float32 (unknown)) → scores" in err and "\n" not in err, err
    assert main(["import", path, "--signature", "nope", "--out", str(tmp_path / "b")]) == 2
    assert "no signature 'nope'" in capsys.readouterr().err
    assert main(["import", path, "--signature", "predict_images", "--out", str(tmp_path / "c")]) == 0
    onnx = str(files["external.onnx"])
    assert main(["import", onnx, "--signature", "serving_default", "--out", str(tmp_path / "d")]) == 2
    assert "names a SavedModel signature" in capsys.readouterr().err


def test_slot_variables_that_tensorflow_cannot_restore_are_said(files, tmp_path):
    run = importing.import_model(files["slots_savedmodel"], tmp_path / "run", log=lambda *_: None)
    assert "add_slot" in (run / "summary.txt").read_text()  # the note: its signatures were loaded alone


def test_import_checks_what_it_wrote_and_writes_nothing_wrong(files, tmp_path, monkeypatch):
    """An adapter that broke the graph (as the IR-3 one did) is caught before import says "imported"."""
    from digitlab.errors import ModelError
    from digitlab.models import contract, imported

    def broken(model, c):
        adapted = contract.onnx_adapter(model, c)
        kept = [t for t in adapted.graph.initializer if t.name != "contract_a"]  # a constant the adapter needs
        del adapted.graph.initializer[:]
        adapted.graph.initializer.extend(kept)
        return adapted

    monkeypatch.setattr(imported, "onnx_adapter", broken)
    with pytest.raises(ModelError, match="nothing was written"):
        importing.import_model(files["external.onnx"], tmp_path / "run", log=lambda *_: None)
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run.*"))


def test_one_line_keeps_the_cause_at_the_end_of_a_long_message():
    text = "[ONNXRuntimeError] : 1 : FAIL : Load model failed: " + "node dump " * 40 + ". Missing: contract_floor"
    line = one_line(RuntimeError(text))
    assert len(line) <= 200 and line.startswith("[ONNXRuntimeError]") and line.endswith("Missing: contract_floor")
    assert one_line(RuntimeError("short\n  and  plain")) == "short and plain"
