"""`digitlab import` on models built as the MNIST tutorials build them (examples/tutorial_models.py), trained
briefly on real MNIST: detection, parity with the model's own answers, evaluation, explanations, serving,
and one clear line for every file that cannot work."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitlab.cli import main
from digitlab.errors import ModelError
from digitlab.models import importing
from digitlab.models.importing import ImportOptions, import_model

ROOT = Path(__file__).resolve().parents[2]
# name → (layout, scale, invert, outputs, fixed batch)
EXPECTED = {
    "cnn_softmax.keras": ("28x28x1", "unit", False, "probabilities", None),
    "cnn_softmax.h5": ("28x28x1", "unit", False, "probabilities", None),
    "mlp_28x28": ("28x28", "unit", False, "probabilities", None),
    "dense_784": ("784", "unit", False, "logits", None),
    "cnn_bytes": ("28x28x1", "byte", False, "logits", None),
    "module_784": ("784", "unit", False, "logits", None),
    "torch_style": ("1x28x28", "standard", False, "log-probabilities", 1),
}


def _tutorial_models():
    spec = importlib.util.spec_from_file_location("tutorial_models", ROOT / "examples" / "tutorial_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tutorial(tmp_path_factory, mnist_dir):
    """Every tutorial-style model, trained on 20,000 real MNIST images (about 40 s on 2 cores)."""
    return _tutorial_models().save_all(tmp_path_factory.mktemp("tutorial"), log=lambda *_: None)


@pytest.fixture(scope="session")
def imported(tutorial, tmp_path_factory):
    root = tmp_path_factory.mktemp("imported")
    return {name: import_model(path, root / name, log=lambda *_: None) for name, path in tutorial.items()}


@pytest.fixture(scope="session")
def test_digits(mnist):
    return (mnist.x_test[:500].astype(np.float32) / 255.0), mnist.y_test[:500]


def _own_probabilities(name: str, path: Path, x: np.ndarray) -> np.ndarray:
    """What the model itself answers on digits x ((N, 28, 28) in [0, 1]), in its own convention, as probabilities."""
    from scipy.special import softmax

    if name == "torch_style":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = ((x - 0.1307) / 0.3081)[:, None].astype(np.float32)
        return np.exp(np.concatenate([session.run(None, {"input": feed[i : i + 1]})[0] for i in range(len(x))]))
    if name == "module_784":
        import tensorflow as tf

        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        return softmax(signature(x=tf.constant(x.reshape(-1, 784)))["output_0"].numpy(), axis=1)
    import keras

    model = keras.saving.load_model(path)
    feed = {"mlp_28x28": x, "dense_784": x.reshape(-1, 784), "cnn_bytes": x[..., None] * 255.0}.get(name, x[..., None])
    out = model.predict(feed, verbose=0, batch_size=500)
    return out if name.startswith("cnn_softmax") or name == "mlp_28x28" else softmax(out, axis=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPECTED))
def test_detection_and_served_parity(name, tutorial, imported, test_digits):
    from digitlab.inference.predictor import Predictor

    run = imported[name]
    contract = json.loads((run / "contract.json").read_text())
    layout, scale, invert, outputs, batch = EXPECTED[name]
    assert (contract["layout"], contract["scale"], contract["invert"], contract["outputs"], contract["batch"]) == (
        layout,
        scale,
        invert,
        outputs,
        batch,
    )
    assert contract["evidence"]["accuracy"] >= 0.9 and len(contract["evidence"]["candidates"]) == 8
    config = json.loads((run / "config.json").read_text())
    assert len(config["source"]["sha256"]) == 64 and config["settings"]["imported"] is True
    assert "uncalibrated" in (run / "summary.txt").read_text()
    x, _ = test_digits
    own = _own_probabilities(name, tutorial[name], x)
    predictor = Predictor.load(run, "auto", log=lambda *_: None)  # what serve and predict use
    assert predictor.runtime.name == "onnx"
    np.testing.assert_allclose(predictor.probabilities(x), own, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnn_softmax.h5", "torch_style"])
def test_evaluate_reports_the_models_own_test_accuracy(name, tutorial, imported, mnist, capsys):
    from digitlab.evaluation.evaluate import evaluate_model

    x, y = mnist.x_test.astype(np.float32) / 255.0, mnist.y_test
    own = float(np.mean(_own_probabilities(name, tutorial[name], x).argmax(1) == y))
    result = evaluate_model(imported[name], report=False)
    assert result.metrics["accuracy"] == pytest.approx(own, abs=1e-4)
    assert result.metrics["calibration"]["after"]["temperature"] == 1.0
    assert "imported" in result.metrics["calibration"]["temperature_fitted_on"]
    assert (
        not (imported[name] / "calibration.json").exists()
        or json.loads((imported[name] / "calibration.json").read_text())["temperature"] == 1.0
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnn_softmax.keras", "mlp_28x28", "dense_784", "cnn_bytes", "module_784"])
def test_explain_every_tensorflow_kind(name, imported, test_digits):
    from digitlab.explain.engine import Explainer
    from digitlab.models.saved import load_model

    explainer = Explainer(load_model(imported[name]).model)
    x = test_digits[0][0]
    ig = explainer.integrated_gradients(x, explainer.score_weights(7), baseline="black", steps=64)
    assert ig["completeness"]["relative_error"] < 0.05
    for method in ("smoothgrad", "occlusion") + (("layercam",) if explainer.cam_index is not None else ()):
        values = explainer.attribution(x, method, 7)["values"]
        assert values.shape == (28, 28) and np.abs(values).max() > 0
    assert (explainer.cam_index is not None) == name.startswith("cnn")


def test_an_onnx_import_explains_by_occlusion_only(imported, test_digits):
    from digitlab.explain.explanation import ModelExplainer

    explainer = ModelExplainer.load(imported["torch_style"])
    body = explainer.explain(test_digits[0][0], "occlusion", place=False)
    assert body["label"] == int(test_digits[1][0]) and np.abs(np.array(body["attribution"]["values"])).max() > 0
    with pytest.raises(Exception, match="needs gradients"):
        explainer.explain(test_digits[0][0], "ig", place=False)


def test_explain_a_residual_nested_model(test_digits):
    """Branches (a residual Add) and a nested model: layer maps for each conv, LayerCAM on the nested last conv,
    integrated gradients still complete."""
    import keras
    from keras import layers

    from digitlab.explain.engine import Explainer

    keras.utils.set_random_seed(0)
    inner_in = keras.Input((28, 28, 8))
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="inner_conv")(inner_in)
    block = keras.Model(inner_in, layers.Add(name="residual")([inner_in, h]), name="block")
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    x = layers.MaxPooling2D(name="pool")(block(x))
    model = keras.Model(inputs, layers.Dense(10, name="logits")(layers.Flatten()(x)))
    explainer = Explainer(model)
    names = [a.name for a in explainer.activations(test_digits[0][0])]
    assert names[:4] == ["stem", "inner_conv", "residual", "pool"] and names[-1] == "logits"
    assert explainer.layers[explainer.cam_index].name == "inner_conv"
    ig = explainer.integrated_gradients(test_digits[0][0], explainer.score_weights(3), "black", 128)
    assert ig["completeness"]["relative_error"] < 0.05
    assert explainer.attribution(test_digits[0][0], "gradcam", 3)["values"].shape == (28, 28)
    assert explainer.features(test_digits[0][:2]).shape == (2, 14 * 14 * 8)


def test_serve_an_imported_file_directly(tutorial, tmp_path, monkeypatch, test_digits):
    """`digitlab serve --model my_model.h5`: imported on the fly into the cache; /api/model shows the contract."""
    from fastapi.testclient import TestClient

    from digitlab.serving.app import ServeConfig, create_app

    monkeypatch.setattr(importing, "cache_root", lambda data_dir=None: tmp_path / "cache")
    with TestClient(create_app(ServeConfig(model=str(tutorial["torch_style"])))) as client:
        info = client.get("/api/model").json()
        assert info["contract"]["format"] == "onnx" and info["contract"]["input_scale"] == "standard"
        assert info["contract"]["fixed_batch"] == 1 and info["runtime"] == "onnx"
        x, y = test_digits
        body = client.post("/api/predict", json={"pixels": x[0].tolist()}).json()
        assert body["label"] == int(y[0])
        rows = client.post("/v1/models/digits:predict", json={"instances": x[:3].tolist()}).json()["predictions"]
        assert [int(np.argmax(r)) for r in rows] == y[:3].tolist()
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_predict_cli_imports_once_then_reuses(tutorial, tmp_path, monkeypatch, capsys, mnist):
    from PIL import Image

    monkeypatch.setattr(importing, "cache_root", lambda data_dir=None: tmp_path / "cache")
    image = tmp_path / "digit.png"
    Image.fromarray(mnist.x_test[0]).save(image)
    args = ["predict", str(image), "--model", str(tutorial["cnn_softmax.h5"])]
    assert main(args) == 0
    first = capsys.readouterr()
    assert "has no digitlab run around it" in first.out + first.err and f"{image}" in first.out
    assert main(args) == 0
    second = capsys.readouterr()
    assert "has no digitlab run around it" not in second.out + second.err
    assert (
        f"digit.png: {int(mnist.y_test[0])}" in second.out.replace("\t", " ") or str(int(mnist.y_test[0])) in second.out
    )
    assert main(["import", "--clear-cache"]) == 0 and "1 cached imports removed" in capsys.readouterr().out


def test_exports_of_each_format(imported, tmp_path, capsys):
    assert main(["export", str(imported["torch_style"]), "--format", "onnx", "--out", str(tmp_path / "o")]) == 0
    meta = json.loads((tmp_path / "o" / "onnx.json").read_text())
    assert meta["parity"]["passed"] and meta["input_name"] == "image"
    assert main(["export", str(imported["torch_style"]), "--format", "litert"]) == 2
    err = capsys.readouterr().err.strip()
    assert "exports to onnx only" in err and "\n" not in err
    assert main(["export", str(imported["module_784"]), "--format", "savedmodel", "--out", str(tmp_path / "s")]) == 0


def test_ensemble_and_finetune_refuse_imports_in_one_line(imported, tmp_path, capsys):
    runs = [str(imported["dense_784"]), str(imported["mlp_28x28"])]
    assert main(["ensemble", *runs, "--out", str(tmp_path / "e")]) == 2
    assert "imported model" in capsys.readouterr().err
    assert main(["finetune", "--model", str(imported["torch_style"]), "--feedback", str(tmp_path)]) == 2
    assert "imported ONNX model" in capsys.readouterr().err


def test_importing_again_reuses_the_same_import_and_refuses_other_options(tutorial, imported):
    """The same file with the same options into the same folder (a tutorial run twice) is the same import."""
    from digitlab.errors import ConfigError

    name = "dense_784"
    run = imported[name]
    config = json.loads((run / "config.json").read_text())
    assert (config["schema"], config["kind"]) == ("digitlab.run/2", "import")  # the one run-directory schema
    assert config["options"] == {
        "layout": None,
        "scale": None,
        "outputs": None,
        "invert": None,
        "trust_code": False,
        "signature": None,
    }
    lines = []
    assert import_model(tutorial[name], run, log=lines.append) == run
    assert len(lines) == 1 and "reusing it" in lines[0], lines
    with pytest.raises(ConfigError, match="already holds files"):
        import_model(tutorial[name], run, ImportOptions(scale="unit", invert=False), log=lambda *_: None)


# --- files that cannot work: one line each, never a traceback ----------------------------------------------


def _save(tmp_path: Path, name: str, build: str, fresh_process: bool = False) -> Path:
    """Build and save a small Keras model; in a fresh process when its classes must stay unknown to this one."""
    path = tmp_path / name
    code = f"import keras\nfrom keras import layers\n{build}\nmodel.save({str(path)!r})\n"
    if fresh_process:
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
    else:
        exec(code, {})
    return path


BAD_MODELS = {
    "rgb32.keras": (
        "model = keras.Sequential([keras.Input((32, 32, 3)), layers.Flatten(), layers.Dense(10)])",
        "takes 32×32×3 inputs, not 28×28 digits",
    ),
    "five.keras": (
        "model = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(5)])",
        "answers 5 values per image, not 10 classes",
    ),
    "lambda.keras": (
        "model = keras.Sequential([keras.Input((28, 28, 1)), layers.Lambda(lambda t: t * 2), layers.Flatten(), "
        "layers.Dense(10)])",
        "--trust-code",
    ),
    "custom.keras": (
        "@keras.saving.register_keras_serializable(package='mine')\nclass Twice(layers.Layer):\n"
        "    def call(self, t): return t * 2\n"
        "model = keras.Sequential([keras.Input((28, 28, 1)), Twice(), layers.Flatten(), layers.Dense(10)])",
        "custom layer class",
    ),
}


@pytest.mark.parametrize(
    "name",  # custom.keras saves its model in a fresh process: slow
    [pytest.param(n, marks=pytest.mark.slow) if n == "custom.keras" else n for n in BAD_MODELS],
)
def test_models_that_cannot_work_get_one_line(name, tmp_path, capsys):
    build, message = BAD_MODELS[name]
    path = _save(tmp_path, name, build, fresh_process=name == "custom.keras")  # its class must stay unregistered
    assert main(["import", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("digitlab: error:") and message in err and "\n" not in err, err
    assert not (tmp_path / "run").exists()


def test_corrupt_files_get_one_line(tmp_path, tutorial, capsys):
    onnx_bytes = tutorial["torch_style"].read_bytes()
    files = {
        "garbage.keras": b"PK\x03\x04 not a keras archive",
        "garbage.h5": b"\x89HDF\r\n\x1a\n" + bytes(200),
        "truncated.onnx": onnx_bytes[: len(onnx_bytes) // 2],
        "model.pt": b"\x80\x02torch",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        assert main(["import", str(tmp_path / name), "--out", str(tmp_path / f"run-{name}")]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("digitlab: error:") and "\n" not in err and "Traceback" not in err, err


def test_not_an_mnist_model_and_flags_that_contradict(tmp_path, tutorial, capsys):
    untrained = _save(tmp_path, "untrained.keras", "model = keras.Sequential([keras.Input((784,)), layers.Dense(10)])")
    assert main(["import", str(untrained)]) == 2
    assert "probably not an MNIST model" in capsys.readouterr().err
    said = ["--input-scale", "unit", "--no-invert", "--out", str(tmp_path / "said")]
    assert main(["import", str(untrained), *said]) == 0  # the user said how it was trained: imported as told
    assert "scale unit, white on black" in capsys.readouterr().out
    args = ["import", str(tutorial["dense_784"]), "--input-layout", "28x28", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    assert "does not match the model's input shape (784)" in capsys.readouterr().err


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
def test_trust_code_is_recorded_and_honoured(tmp_path, mnist_dir, test_digits):
    from digitlab.models.saved import load_model

    build = (
        "from digitlab.data.mnist import load_mnist\n"
        "keras.utils.set_random_seed(0)\n"
        "d = load_mnist()\n"
        "inputs = keras.Input((28, 28, 1))\n"
        "x = layers.Flatten()(layers.Lambda(lambda t: t * 1.0)(inputs))\n"
        "model = keras.Model(inputs, layers.Dense(10)(layers.Dense(64, activation='relu')(x)))\n"
        "model.compile('adam', keras.losses.SparseCategoricalCrossentropy(from_logits=True))\n"
        "model.fit(d.x_train[:20000, ..., None] / 255.0, d.y_train[:20000], epochs=2, batch_size=128, verbose=0)"
    )
    path = _save(tmp_path, "lambda.keras", build)
    with pytest.raises(ModelError, match="--trust-code"):
        import_model(path, tmp_path / "refused", log=lambda *_: None)
    run = import_model(path, tmp_path / "run", ImportOptions(trust_code=True), log=lambda *_: None)
    assert json.loads((run / "contract.json").read_text())["trust_code"] is True
    assert "yes (--trust-code)" in (run / "summary.txt").read_text()
    x, y = test_digits
    logits = load_model(run).model.predict(x[:100, ..., None], verbose=0)  # reloads with the code allowed
    assert np.mean(logits.argmax(1) == y[:100]) > 0.85
