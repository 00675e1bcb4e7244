"""The explain engine on real models and real digits: shapes, completeness, deletion, contrast, the API."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

from digitlab.errors import ConfigError
from digitlab.explain import faithfulness
from digitlab.explain.engine import METHODS, Explainer
from digitlab.explain.options import CAM_METHODS
from digitlab.models.saved import load_model

KINDS = ["mlp", "cnn", "deep-cnn", "fast-cnn", "raw-mlp", "transfer"]


@pytest.fixture(scope="module")
def cnn(trained_run):
    return Explainer(load_model(trained_run).model)


@pytest.fixture(scope="module")
def digits(mnist):
    return (mnist.x_test[:100] / 255.0).astype(np.float32), mnist.y_test[:100]


@pytest.mark.parametrize("kind", KINDS)
def test_every_layer_of_every_model_kind(tiny_runs, kind, mnist):
    import keras

    model = load_model(tiny_runs[kind]).model
    explainer = Explainer(model)
    x = (mnist.x_test[0] / 255.0).astype(np.float32)
    layers = explainer.activations(x)
    assert layers[-1].kind == "logits" and layers[-1].shape == [10]
    np.testing.assert_allclose(layers[-1].values, model(x[None, ..., None], training=False)[0], atol=1e-4)
    assert (explainer.cam_index is None) == (kind in ("mlp", "raw-mlp"))
    assert any(a.kind == "conv" for a in layers) == (kind not in ("mlp", "raw-mlp"))
    # each activation equals what Keras computes for that layer (top-level layers) and has its declared shape
    by_name = {a.name: a for a in layers}
    for layer in model.layers:
        if layer.name in by_name and not hasattr(layer, "layers"):
            probe = keras.Model(model.inputs, layer.output)
            np.testing.assert_allclose(by_name[layer.name].values, probe(x[None, ..., None])[0], atol=1e-4)
    for layer in explainer.layers:
        if layer.name in by_name:
            assert by_name[layer.name].shape == list(layer.output.shape[1:]), layer.name
    if kind == "transfer":  # the nested base's own layers are shown, not one opaque block
        base = next(layer for layer in model.layers if hasattr(layer, "layers"))
        assert {layer.name for layer in base.layers if "conv" in layer.name} <= set(by_name)
    for method in METHODS:
        if method in CAM_METHODS and explainer.cam_index is None:
            with pytest.raises(ConfigError, match="needs a convolutional layer"):
                explainer.attribution(x, method, 7)
            continue
        values = explainer.attribution(x, method, 7)["values"]
        assert values.shape == (28, 28) and np.isfinite(values).all()
        # Grad-CAM's ReLU may zero a whole map (a weighted sum negative everywhere); the others always show something
        assert values.min() >= 0 if method == "gradcam" else np.abs(values).max() > 0


def test_integrated_gradients_complete_on_real_digits(cnn, digits):
    """Σ attributions = score(x) − score(baseline) at 64 steps, for every baseline (Sundararajan et al. 2017, §3).

    Typically within 0.1%; the Riemann sum's worst digit depends on the trained weights (0.065 on one of 30 after a
    one-ulp change of the learning-rate schedule), so the bound is on the 90th percentile, with a looser maximum.
    """
    images, _ = digits
    for baseline in ("black", "blur", "grey"):
        errors = faithfulness.completeness(cnn, images[:30], steps=64, baseline=baseline)
        assert np.quantile(errors, 0.9) <= 0.05 and np.max(errors) <= 0.1, (baseline, np.sort(errors)[-3:])


@pytest.mark.parametrize("method", ["ig", "layercam", "smoothgrad"])
def test_deletion_beats_random(cnn, digits, method):
    """Removing the most-attributed ink first lowers the prediction faster than removing random ink."""
    images, _ = digits
    result = faithfulness.deletion(cnn, images, method)
    assert result["ratio"] < 0.9, result


def test_contrast_maps_change_with_the_contrast_class(cnn, digits):
    x, label = digits[0][0], int(digits[1][0])
    others = [c for c in range(10) if c != label][:3]
    maps = [cnn.attribution(x, "ig", label, c)["values"] for c in [None, *others]]
    for i in range(len(maps)):
        for j in range(i + 1, len(maps)):
            assert np.abs(maps[i] - maps[j]).max() > 1e-3
    contrast = cnn.integrated_gradients(x, cnn.score_weights(label, others[0]))["completeness"]
    logits = cnn.logits(x)[0]
    base = cnn.logits(np.zeros((28, 28), np.float32))[0]
    expected = (logits[label] - logits[others[0]]) - (base[label] - base[others[0]])
    assert contrast["score_difference"] == pytest.approx(expected, rel=1e-3)


def test_bad_targets_are_config_errors(cnn, digits):
    x = digits[0][0]
    for target, contrast, message in [(10, None, "target"), (3, 3, "differ"), (3, -1, "contrast")]:
        with pytest.raises(ConfigError, match=message):
            cnn.attribution(x, "ig", target, contrast)
    with pytest.raises(ConfigError, match="method"):
        cnn.attribution(x, "lime", 3)
    with pytest.raises(ConfigError, match="steps"):
        cnn.attribution(x, "ig", 3, steps=2)


@pytest.mark.parametrize("method", ["smoothgrad", "layercam"])
def test_a_shuffled_model_gets_a_different_map(trained_run, digits, method):
    """The sanity check: attributions must depend on the learned weights (rank correlation on the ink < 0.3).
    Integrated Gradients is measured by bench/explain_faithfulness.py; its ×(x − x′) keeps it near 0.3."""
    model = load_model(trained_run).model
    assert faithfulness.randomisation(model, digits[0][:20], method)["ink"] < 0.3


def test_explain_cli(trained_run, tmp_path, mnist, capsys):
    from PIL import Image

    from digitlab.cli import main

    Image.fromarray(255 - mnist.x_test[0]).resize((200, 200)).save(tmp_path / "seven.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    out = str(tmp_path / "out")
    code = main(["explain", str(tmp_path), "--model", str(trained_run), "--contrast", "1", "--out", out, "--json"])
    assert code == 1  # one of the two files failed, and said so
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    good = next(r for r in lines if r["path"].endswith("seven.png"))
    bad = next(r for r in lines if r["path"].endswith("broken.png"))
    assert "not a recognised image" in bad["error"]
    assert good["label"] == 7 and good["contrast"] == 1 and set(good["attributions"]) == set(METHODS)
    assert good["attributions"]["ig"]["completeness"]["relative_error"] < 0.05
    assert np.array(good["attributions"]["layercam"]["values"]).shape == (28, 28)
    from PIL import Image as I

    assert I.open(good["panel"]).size[0] > 500

    # without --json: one readable line per image (the digit, what was explained, where the panel is)
    assert (
        main(["explain", str(tmp_path / "seven.png"), "--model", str(trained_run), "--method", "ig", "--out", out]) == 0
    )
    text = capsys.readouterr().out.strip().splitlines()
    assert len(text) == 1 and text[0].startswith(f"{tmp_path / 'seven.png'}: 7 (") and "why 7: ig →" in text[0]
    assert text[0].endswith(".png") and "[[" not in text[0]


def _cam_model():
    """A hand-set network where the CAMs can be worked out: conv = the input itself (1×1 kernel of 1), then a
    logit for class 3 that is +2 × the ink in the left half and −1 × the ink in the right half."""
    import keras

    inputs = keras.Input((28, 28, 1))
    conv = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="conv")(inputs)
    head = keras.layers.Dense(10, use_bias=False, name="logits")
    model = keras.Model(inputs, head(keras.layers.Flatten()(conv)))
    weights = np.zeros((784, 10), np.float32)
    weights[:, 3] = np.where(np.arange(784) % 28 < 14, 2.0, -1.0)  # row-major: the column is index % 28
    head.set_weights([weights])
    return model


def test_layercam_and_gradcam_are_the_published_methods():
    """LayerCAM weighs each position by its own positive gradient; Grad-CAM weighs each channel by its gradient
    averaged over positions, then takes the ReLU (Jiang et al. 2021; Selvaraju et al. 2017)."""
    explainer = Explainer(_cam_model())
    x = np.ones((28, 28), np.float32)
    w = explainer.score_weights(3)
    layercam, gradcam = explainer.layercam(x, w), explainer.gradcam(x, w)
    np.testing.assert_allclose(layercam[:, :13], 2.0, atol=1e-5)  # +2 gradient, ink 1 (away from the seam)
    np.testing.assert_allclose(layercam[:, 15:], 0.0, atol=1e-5)  # negative gradients count as 0
    np.testing.assert_allclose(gradcam, 0.5, atol=1e-5)  # α = mean(+2, −1) = 0.5 everywhere, times ink 1
    w_against = explainer.score_weights(0, 3)  # the opposite score: α = −0.5, the ReLU leaves nothing
    np.testing.assert_allclose(explainer.gradcam(x, w_against), 0.0, atol=1e-6)
    np.testing.assert_allclose(explainer.layercam(x, w_against)[:, 15:], 1.0, atol=1e-5)
    assert explainer.attribution(x, "gradcam", 3)["values"] == pytest.approx(gradcam)


@pytest.fixture(scope="module")
def client(trained_run):
    from fastapi.testclient import TestClient

    from digitlab.serving.app import ServeConfig, create_app

    with TestClient(create_app(ServeConfig(model=str(trained_run))), raise_server_exceptions=False) as c:
        yield c


def _seven(mnist) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(255 - mnist.x_test[0]).resize((280, 280)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_api_explain(client, mnist):
    r = client.post("/api/explain", json={"image": _seven(mnist), "method": "ig", "contrast": 1, "steps": 32})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] == 7 and len(body["logits"]) == 10 and body["blank"] is False
    assert body["processed"].startswith("data:image/png;base64,")
    assert [layer["kind"] for layer in body["layers"]] == ["conv", "pool", "conv", "pool", "logits"]
    assert all(layer["image"].startswith("data:image/png;base64,") for layer in body["layers"])
    a = body["attribution"]
    assert (a["method"], a["target"], a["contrast"]) == ("ig", 7, 1)
    assert np.array(a["values"]).shape == (28, 28) and np.array(a["baseline"]).shape == (28, 28)
    e = body["embedding"]
    assert len(e["neighbours"]) == 5 and sum(n["label"] == 7 for n in e["neighbours"]) >= 4
    assert {"x", "y"} <= e.keys() and body["timing_ms"]["total"] > 0
    points = client.get("/api/explain/map").json()
    assert len(points["x"]) == len(points["label"]) > 1000
    blank = client.post("/api/explain", json={"pixels": [[0] * 28] * 28}).json()
    assert blank["blank"] is True and blank["label"] is None


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"method": "lime"}, "'method' must be one of"),
        ({"target": 10}, "'target' must be a digit"),
        ({"contrast": "x"}, "'contrast' must be a digit"),
        ({"steps": 1000}, "'steps' must be an integer"),
        ({"steps": True}, "'steps' must be an integer"),
        ({"baseline": "white"}, "'baseline' must be one of"),
        ({"target": 3, "contrast": 3}, "must differ"),
    ],
)
def test_api_explain_errors_are_4xx(client, mnist, payload, message):
    r = client.post("/api/explain", json={"image": _seven(mnist), **payload})
    assert r.status_code == 400 and message in r.json()["error"], r.text


def test_api_explain_bad_images_are_4xx(client, header_bombs):
    assert client.post("/api/explain", content=b"nope").status_code == 400
    assert client.post("/api/explain", content=next(iter(header_bombs.values()))).status_code == 413
    r = client.post("/api/explain?method=lime", content=b"nope")
    assert r.status_code == 400 and "'method'" in r.json()["error"]
