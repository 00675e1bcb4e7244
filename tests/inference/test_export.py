"""Exports (SavedModel, ONNX, LiteRT) of every model kind answer like Keras; runtimes agree; stale copies are
never run."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from digitlab.cli import main
from digitlab.errors import ModelError
from digitlab.inference import export_command
from digitlab.inference.predictor import Predictor
from digitlab.inference.runtimes import open_runtime
from digitlab.models import export, features
from digitlab.models.saved import load_model


@pytest.fixture(scope="module")
def runs(tiny_runs):
    return tiny_runs


@pytest.mark.parametrize("kind", ["mlp", "cnn", "deep-cnn", "raw-mlp", "transfer"])
def test_every_format_passes_parity_for_every_model_kind(runs, kind, tmp_path, mnist_dir):
    results = export_command.export_run(runs[kind], "all", tmp_path, log=lambda *_: None, data_dir=mnist_dir)
    assert [r["format"] for r in results] == list(export.FORMATS)
    for meta in results:
        check = meta["parity"]
        assert check["passed"] and check["images"] == 1000 and check["same_label"] == 1000, (kind, meta["format"])
        assert check["max_abs_probability_diff"] <= 1e-4
        assert meta == json.loads(export.metadata_path(tmp_path, meta["format"]).read_text())
        assert meta["input"]["shape"] == [None, 28, 28, 1] and meta["labels"] == list(range(10))
        loaded = load_model(runs[kind], network=False)
        assert export.is_current(tmp_path, meta["format"], loaded.file_digest(), loaded.temperature) == (True, "")
        # the penultimate features travel with the logits wherever the network has them (a 10-unit Dense last)
        width = features.feature_width(load_model(runs[kind]).model)
        if width is None:
            assert check["features"] is None and "features" not in meta["output"], (kind, meta["format"])
        else:
            assert check["features"]["passed"] and check["features"]["relative"] <= 1e-4, (kind, meta["format"])
            assert meta["output"]["features"] == [None, width]
            assert open_runtime(meta["format"], export.exported_path(tmp_path, meta["format"])).feature_width == width
    onnx, litert = results[1], results[2]
    assert onnx["opset"] == export.ONNX_OPSET
    assert litert["select_tf_ops"] == []
    assert ("CONV_2D" in litert["operators"]) == (kind not in ("mlp", "raw-mlp")), litert["operators"]


def test_savedmodel_signature_runs_as_documented(runs, tmp_path, mnist, mnist_dir):
    """TF Serving's view: `serving_default` (probabilities) and `logits`, input `image` (N, 28, 28, 1) float32 in
    [0, 1]."""
    import tensorflow as tf

    export_command.export_run(runs["cnn"], "savedmodel", tmp_path, log=lambda *_: None, data_dir=mnist_dir)
    folder = tmp_path / "savedmodel" / "digits" / "1"
    assert (folder / "saved_model.pb").is_file()
    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["image"]
    x = (mnist.x_test[:64] / 255.0).astype(np.float32)[..., None]
    out = signature(image=tf.constant(x))
    assert set(out) == {"probabilities"}  # one output: TF Serving answers a plain list per row
    probs = out["probabilities"].numpy()
    logits = tf.saved_model.load(str(folder)).signatures["logits"](image=tf.constant(x))
    assert set(logits) == {"logits"} and logits["logits"].shape == (64, 10)
    found = tf.saved_model.load(str(folder)).signatures["features"](image=tf.constant(x))  # the refusal's input
    assert set(found) == {"features"} and found["features"].shape[0] == 64
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    keras_probs = Predictor.load(runs["cnn"], "keras").probabilities(x)
    np.testing.assert_allclose(probs, keras_probs, atol=1e-4)
    assert (probs.argmax(1) == mnist.y_test[:64]).mean() > 0.9


def test_runtimes_agree_on_real_digits(runs, mnist):
    x = (mnist.x_test[1000:1300] / 255.0).astype(np.float32)
    answers = {
        rt: Predictor.load(runs["cnn"], rt, log=lambda *_: None).probabilities(x) for rt in ("keras", "onnx", "litert")
    }
    for rt in ("onnx", "litert"):
        np.testing.assert_array_equal(answers[rt].argmax(1), answers["keras"].argmax(1))
        assert np.abs(answers[rt] - answers["keras"]).max() <= 1e-4
    # LiteRT pads odd batch sizes: every size gives the same rows
    litert = Predictor.load(runs["cnn"], "litert", log=lambda *_: None)
    np.testing.assert_allclose(litert.probabilities(x[:5]), answers["litert"][:5], atol=1e-6)


def test_predict_gives_the_same_labels_under_every_runtime(runs, mnist, tmp_path):
    from digitlab.data.synthetic import render
    from digitlab.inference.predict import predict_files

    paths = []
    for i in range(24):
        path = tmp_path / f"{i}.png"
        render(mnist.x_test[i], "black-on-white", np.random.default_rng(i)).save(path)
        paths.append(path)
    labels = {}
    for rt in ("keras", "onnx", "litert"):
        predictor = Predictor.load(runs["cnn"], rt, log=lambda *_: None)
        labels[rt] = [p.label for p in predict_files(paths, predictor, progress=False, workers=1)]
    assert labels["onnx"] == labels["keras"] == labels["litert"]
    assert np.mean(np.array(labels["keras"]) == mnist.y_test[:24]) > 0.85


def test_auto_picks_onnx_without_importing_tensorflow(runs):
    code = (
        "import sys\nfrom digitlab.inference.predictor import Predictor\n"
        f"p = Predictor.load({str(runs['cnn'])!r}, 'auto')\n"
        "print(p.runtime.name, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["onnx", "False"], out.stderr


def test_corrupt_or_stale_exports_are_rebuilt(runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["mlp"], run)
    loaded = load_model(run, network=False)
    path = export_command.ensure_exported(loaded, "onnx", log=lambda *_: None)
    path.write_bytes(b"not an onnx file")  # corrupted on disk
    assert export.is_current(run / "export", "onnx", loaded.file_digest(), 1.0) == (
        False,
        "model.onnx is missing or corrupt (its sha256 differs from the metadata's)",
    )
    notes = []
    export_command.ensure_exported(loaded, "onnx", log=notes.append)
    assert "missing or corrupt" in notes[0]
    assert export.is_current(run / "export", "onnx", loaded.file_digest(), 1.0) == (True, "")
    # a retrained model.keras makes every export stale
    from digitlab.models.registry import ModelOptions
    from digitlab.models.zoo import build_model

    build_model("mlp", ModelOptions()).save(run / "model.keras")
    fresh = load_model(run, network=False)
    assert export.is_current(run / "export", "onnx", fresh.file_digest(), 1.0)[1] == (
        "the model file changed since it was exported"
    )
    predictor = Predictor.load(run, "onnx", log=notes.append)
    assert "changed since it was exported" in notes[-1]
    x = np.random.default_rng(0).random((8, 28, 28), np.float32)
    np.testing.assert_allclose(predictor.probabilities(x), Predictor.load(run, "keras").probabilities(x), atol=1e-5)


def test_a_copy_that_disagrees_is_removed_with_a_clear_error(runs, tmp_path, monkeypatch):
    real = export_command.open_runtime

    class Off:
        name = "onnx"

        def __init__(self, inner):
            self.inner = inner

        def forward(self, batch):
            logits, features = self.inner.forward(batch)
            return logits + np.eye(10, dtype=np.float32)[np.zeros(len(batch), int)] * 3, features

    monkeypatch.setattr(export_command, "open_runtime", lambda fmt, path: Off(real(fmt, path)))
    with pytest.raises(ModelError, match="does not answer like the Keras model"):
        export_command.export_run(runs["cnn"], "onnx", tmp_path, log=lambda *_: None)
    assert not (tmp_path / "model.onnx").exists() and not (tmp_path / "onnx.json").exists()


def test_export_cli(runs, tmp_path, capsys):
    assert main(["export", str(runs["mlp"]), "--format", "onnx", "--out", str(tmp_path)]) == 0
    assert "parity on 1000 test digits: 1000 same labels" in capsys.readouterr().out
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "onnx.json").is_file()
    assert main(["export", str(tmp_path / "nope"), "--format", "onnx"]) == 2
    assert "no model at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(runs["mlp"]), "--format", "tfjs"])
