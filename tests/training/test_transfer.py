"""Transfer learning, the offline transfer study (bench/) and fine-tuning on feedback: small real runs on real MNIST."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab.cli import main
from digitlab.errors import ConfigError, ModelError
from digitlab.rundir import RunDir
from digitlab.training.config import resolve_config

SMALL = {"validation_size": 500, "batch_size": 64, "patience": 0}
QUIET = {"log": lambda *_: None}


def _images(mnist, n: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = (mnist.x_train[start : start + n, ..., None] / 255.0).astype("float32")
    return x, mnist.y_train[start : start + n].astype("int32")


def _weights_by_layer(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.array(w) for w in layer.weights] for layer in model.layers if layer.weights}


def _changed(before: dict, after: dict) -> set[str]:
    return {
        name for name in before if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name], strict=True))
    }


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, mnist_dir):
    """A tiny real cnn run (2,048 images, one epoch): a base to transfer from and a model to fine-tune."""
    from digitlab.training.train import train_and_evaluate

    out = tmp_path_factory.mktemp("base") / "cnn"
    train_and_evaluate(resolve_config("cnn", out=str(out), limit=2048, epochs=1, lr=3e-3, **SMALL), **QUIET)
    return out


@pytest.fixture(scope="module")
def transfer_run(base_run, tmp_path_factory):
    """`digitlab train --model transfer --base RUN --fine-tune-layers 1` on 1,024 images: both phases."""
    from digitlab.training.train import train_and_evaluate

    out = tmp_path_factory.mktemp("transfer") / "run"
    config = resolve_config(
        "transfer",
        base=str(base_run),
        out=str(out),
        limit=1024,
        epochs=2,
        lr=3e-3,
        fine_tune_layers=1,
        fine_tune_epochs=1,
        **SMALL,
    )
    return train_and_evaluate(config, **QUIET)


def test_transfer_from_a_saved_digitlab_model_trains_head_then_fine_tunes(transfer_run, base_run):
    from digitlab.evaluation.evaluate import evaluate_model
    from digitlab.models.saved import load_model
    from digitlab.models.transfer_network import saved_base, weighted_layers

    run = RunDir(transfer_run.run_dir)
    history = run.read_history()
    assert [int(r["epoch"]) for r in history] == [1, 2, 3]
    assert [int(r["phase"]) for r in history] == [1, 1, 2]
    assert [r["lr"] for r in history] == pytest.approx([3e-3, 3e-3, 3e-4])  # phase 2 at lr / 10
    info = transfer_run.metrics["transfer"]
    top_conv = weighted_layers(saved_base(str(base_run)))[-1].name
    assert [p["unfrozen_base_layers"] for p in info["phases"]] == [[], [top_conv]]
    assert info["phases"][0]["trainable_parameters"] == 1600 * 10 + 10  # the new head only
    assert info["phases"][1]["trainable_parameters"] > info["phases"][0]["trainable_parameters"]
    assert transfer_run.metrics["test"]["accuracy"] > 0.8  # 1,024 labels on a weak base: far above chance
    assert "transfer from" in run.summary.read_text() and run.read_config()["settings"]["base"] == str(base_run)
    # the run works with the rest of digitlab like any other
    assert load_model(run.path).name == "transfer"
    evaluation = evaluate_model(run.path, report=False)
    assert evaluation.metrics["accuracy"] == pytest.approx(transfer_run.metrics["test"]["accuracy"])


def test_the_base_gives_the_same_features_in_training_and_inference(transfer_run, mnist):
    """Dropout is stripped from a digitlab base (Keras 3 overrides the nested training=False, see transfer.py)."""
    import keras

    model = transfer_run.model
    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in base.layers)
    x, _ = _images(mnist, 64)
    np.testing.assert_array_equal(np.asarray(base(x, training=True)), np.asarray(base(x, training=False)))
    assert not np.array_equal(np.asarray(model(x, training=True)), np.asarray(model(x, training=False)))  # head


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
def test_frozen_layers_stay_unchanged_in_phase_1_and_only_the_top_k_change_in_phase_2(tmp_path, mnist_dir):
    """A base with BatchNorm (conv+BN, conv+BN, dense): phase 1 moves nothing in it, not even the BatchNorm
    moving statistics; phase 2 with K=1 moves its dense layer only."""
    import keras
    from keras import layers

    from digitlab.models.transfer_network import saved_base, weighted_layers
    from digitlab.training.train import train_and_evaluate

    x = inputs = keras.Input((28, 28, 1))
    for filters in (8, 16):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.Activation("relu")(layers.BatchNormalization(momentum=0.9)(x))
    x = layers.Dense(32, activation="relu")(layers.Flatten()(x))
    keras.Model(inputs, layers.Dense(10, name="logits")(x)).save(tmp_path / "fast.keras")
    base0 = saved_base(str(tmp_path / "fast.keras"))
    initial = _weights_by_layer(base0)
    assert [type(layer).__name__ for layer in weighted_layers(base0)] == ["Conv2D", "Conv2D", "Dense"]
    snapshots = {}

    def snapshot(epoch, model):
        base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
        snapshots[epoch] = (_weights_by_layer(base), [np.array(w) for w in model.get_layer("logits").weights])

    config = resolve_config(
        "transfer",
        base=str(tmp_path / "fast.keras"),
        out=str(tmp_path / "run"),
        limit=256,
        epochs=1,
        fine_tune_layers=1,
        fine_tune_epochs=1,
        **SMALL,
    )
    train_and_evaluate(config, on_epoch_end=snapshot, **QUIET)
    phase1, head1 = snapshots[1]
    phase2, head2 = snapshots[2]
    dense = weighted_layers(base0)[-1].name
    bn = {layer.name for layer in base0.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert len(bn) == 2
    assert _changed(initial, phase1) == set()  # frozen: kernels, biases, BN gamma/beta and moving statistics
    assert _changed(initial, phase2) == {dense}  # only the top weighted layer; BatchNorm stays frozen
    assert any(not np.array_equal(a, b) for a, b in zip(head1, head2, strict=True))  # the head kept learning


@pytest.fixture(scope="module")
def application_models(tmp_path_factory, mnist):
    """VGG16 and MobileNetV2 with --weights none at the adapted size, one training step each, saved."""
    import keras

    from digitlab.models.transfer_network import set_trainable_top
    from digitlab.training.transfer_phases import transfer_model_for as build_transfer_model

    folder = tmp_path_factory.mktemp("applications")
    x, y = _images(mnist, 16)
    built = {}
    for name in ("VGG16", "mobilenet_v2"):
        config = resolve_config("transfer", base=name, weights="none", fine_tune_layers=2)
        transfer = build_transfer_model(config)
        set_trainable_top(transfer.base, 0)
        before = _weights_by_layer(transfer.base), np.array(transfer.model.get_layer("logits").kernel)
        transfer.model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            run_eagerly=True,  # one step: tracing the graph would cost more than the step
        )
        history = transfer.model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        after = _weights_by_layer(transfer.base), np.array(transfer.model.get_layer("logits").kernel)
        path = folder / f"{config.base}.keras"
        # the adapter (our part) is saved for the plain-Keras reload test; the base is Keras' own, and the
        # nested-base model is covered by the transfer run (loading VGG16's 59 MB would double the runtime)
        layers = transfer.model.layers
        adapted = layers[layers.index(transfer.base) - 1].output  # the adapter's last layer, feeding the base
        saved = keras.Model(transfer.model.input, adapted, name=f"{config.base}_adapter")
        assert saved.output_shape == (None, 32, 32, 3)
        saved.save(path)
        built[config.base] = {
            "transfer": transfer,
            "before": before,
            "after": after,
            "path": path,
            "saved": saved,
            "x": x,
            "loss": history.history["loss"][0],
        }
    return built


def test_keras_applications_bases_build_at_the_adapted_size_and_train_a_step(application_models):
    from digitlab.models.transfer_network import set_trainable_top

    assert set(application_models) == {"vgg16", "mobilenetv2"}  # names matched case- and punctuation-insensitively
    for key, built in application_models.items():
        transfer = built["transfer"]
        assert transfer.model.input_shape == (None, 28, 28, 1) and transfer.model.output_shape == (None, 10)
        assert transfer.base.input_shape == (None, 32, 32, 3), key  # resized to the base's minimum size
        assert transfer.info["weights"] == "none" and transfer.info["input_size"] == 32
        assert np.isfinite(built["loss"])
        (base_before, head_before), (base_after, head_after) = built["before"], built["after"]
        assert not np.array_equal(head_before, head_after), key  # the step trained the head ...
        assert _changed(base_before, base_after) == set(), key  # ... and nothing in the frozen base (BN included)
        unfrozen = set_trainable_top(transfer.base, 2)
        trainable = [layer.name for layer in transfer.base.layers if layer.trainable]
        assert trainable == unfrozen and len(unfrozen) == 2, key
        assert all("bn" not in name.lower() and "batchnorm" not in name.lower() for name in unfrozen)


@pytest.mark.parametrize("key, size", [("vgg16", 32), ("vgg16", 48), ("mobilenetv2", 32), ("mobilenetv2", 96)])
def test_the_input_adapter_equals_the_bases_own_preprocess_input(mnist, key, size):
    import keras
    import tensorflow as tf

    from digitlab.models.transfer_network import APPLICATIONS, input_adapter

    inputs = keras.Input((28, 28, 1))
    adapter = keras.Model(inputs, input_adapter(inputs, APPLICATIONS[key], size))
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in adapter.layers)  # plain Keras can load it
    x, _ = _images(mnist, 8)
    rgb = np.repeat(tf.image.resize(x, (size, size), method="bilinear").numpy() * 255.0, 3, axis=-1)
    module = {"vgg16": keras.applications.vgg16, "mobilenetv2": keras.applications.mobilenet_v2}[key]
    expected = np.asarray(module.preprocess_input(rgb.copy()))
    got = np.asarray(adapter(x))
    assert got.shape == (8, size, size, 3)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    low, high = {"vgg16": (-123.68, 255 - 103.939), "mobilenetv2": (-1.0, 1.0)}[key]  # black pixels, full ink
    assert got.min() == pytest.approx(low, abs=1e-3) and got.max() > high - 0.05 * (high - low)


def test_weights_from_a_local_file(application_models, tmp_path):
    from digitlab.training.transfer_phases import transfer_model_for as build_transfer_model

    source = application_models["mobilenetv2"]["transfer"].base
    source.save_weights(tmp_path / "mobilenetv2.weights.h5")
    config = resolve_config("transfer", base="mobilenetv2", weights=str(tmp_path / "mobilenetv2.weights.h5"))
    assert config.input_size == 32
    loaded = build_transfer_model(config).base
    for a, b in zip(source.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "broken.h5").write_bytes(b"not an HDF5 file")
    with pytest.raises(ModelError, match="cannot load --weights .*broken.h5 into mobilenetv2"):
        build_transfer_model(resolve_config("transfer", base="mobilenetv2", weights=str(tmp_path / "broken.h5")))


def test_unreachable_imagenet_weights_give_a_one_line_error_naming_weights_path(monkeypatch, tmp_path, capsys):
    """The weights' download pointed at a closed local port: refused at once, no network, and the process's
    default socket timeout is never touched (the timeout is the one connection's)."""
    from digitlab.models import transfer_network

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    monkeypatch.setattr(transfer_network, "WEIGHTS_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # never a cached copy
    seen = []
    real = socket.setdefaulttimeout
    monkeypatch.setattr(socket, "setdefaulttimeout", lambda t: (seen.append(t), real(t)))
    out = tmp_path / "run"
    assert main(["train", "--model", "transfer", "--base", "vgg16", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "the ImageNet weights for vgg16 could not be downloaded" in err
    assert "refused" in err.lower()  # the underlying reason
    assert "--weights PATH" in err and "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in err
    assert not out.exists()  # it failed before creating the run directory
    assert seen == [] and not list((tmp_path / "keras").glob("models/*"))  # no global timeout, no partial file


def test_saved_transfer_models_load_in_plain_keras(transfer_run, application_models, tmp_path):
    """A fresh interpreter that never imports digitlab (default safe_mode) loads them and predicts the same:
    a transfer run (nested base called with training=False, new head) and both input adapters."""
    x = application_models["vgg16"]["x"]
    np.save(tmp_path / "x.npy", x)
    paths = {"cnn-base": str(transfer_run.run_dir / "model.keras")}
    paths.update({key: str(built["path"]) for key, built in application_models.items()})
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, keras
        x = np.load({str(tmp_path / "x.npy")!r})
        for kind, path in {paths!r}.items():
            np.save({str(tmp_path)!r} + f"/{{kind}}.npy", np.asarray(keras.saving.load_model(path)(x)))
        assert not any(name.startswith("digitlab") for name in sys.modules)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    expected = {"cnn-base": transfer_run.model}
    expected.update({key: built["saved"] for key, built in application_models.items()})
    for kind, model in expected.items():
        np.testing.assert_allclose(np.load(tmp_path / f"{kind}.npy"), np.asarray(model(x)), atol=1e-4, err_msg=kind)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "transfer"], "--model transfer needs --base"),
        (["--model", "cnn", "--base", "vgg16"], "--base applies only to --model transfer"),
        (["--model", "cnn", "--fine-tune-layers", "2"], "--fine-tune-layers applies only to --model transfer"),
        (["--model", "transfer", "--base", "resnet50"], "nor a saved digitlab model"),
        (["--model", "transfer", "--base", "vgg16", "--fine-tune-layers", "-1"], "--fine-tune-layers must be >= 0"),
        (
            ["--model", "transfer", "--base", "vgg16", "--input-size", "16"],
            "--input-size for vgg16 must be at least 32",
        ),
        (["--model", "transfer", "--base", "vgg16", "--weights", "/no/such.h5"], "no file at /no/such.h5"),
        (["--model", "transfer", "--base", "vgg16", "--loop", "custom"], "trains with --loop fit"),
        (
            ["--model", "transfer", "--base", "vgg16", "--fine-tune-layers", "2", "--fine-tune-lr", "2e-4"],
            "--fine-tune-lr must be positive and at most --lr / 10 = 0.0001",
        ),
        (["--model", "transfer", "--base", "vgg16", "--fine-tune-epochs", "2"], "need --fine-tune-layers K > 0"),
    ],
)
def test_bad_transfer_settings_give_one_line_errors(capsys, args, message):
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_the_learning_rate_rule_and_defaults(base_run, capsys, tmp_path):
    config = resolve_config("transfer", base="vgg16", lr=1e-3, fine_tune_layers=3)
    assert config.fine_tune_lr == pytest.approx(1e-4) and config.fine_tune_epochs == config.epochs
    assert config.weights == "imagenet" and config.input_size == 32
    assert resolve_config("transfer", base="MobileNetV2").input_size == 96  # smallest size with ImageNet weights
    assert resolve_config("transfer", base="mobilenetv2", weights="none").input_size == 32
    assert resolve_config("transfer", base="vgg16", lr=2e-3, fine_tune_layers=1, fine_tune_lr=2e-4).fine_tune_lr == 2e-4
    with pytest.raises(ConfigError, match="at most --lr / 10"):
        resolve_config("transfer", base="vgg16", lr=2e-3, fine_tune_layers=1, fine_tune_lr=2.1e-4)
    with pytest.raises(ConfigError, match="apply to keras.applications bases"):
        resolve_config("transfer", base=str(base_run), weights="none")
    assert "transfer" not in json.dumps(resolve_config("cnn").settings())  # other runs' config.json unchanged
    out = tmp_path / "run"
    code = main(["train", "--model", "transfer", "--base", str(base_run), "--fine-tune-layers", "5", "--out", str(out)])
    assert code == 2 and "has only 2 layers with weights" in capsys.readouterr().err
    assert not out.exists()
    assert main(["models"]) == 0 and "transfer" in capsys.readouterr().out


# --- the offline study (bench/transfer_study.py) ------------------------------------------------------------


def _transfer_study():
    """The study script as a module (it lives in bench/, outside the package)."""
    import importlib.util

    path = Path(__file__).parents[2] / "bench" / "transfer_study.py"
    spec = importlib.util.spec_from_file_location("transfer_study", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["transfer_study"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
def test_the_transfer_experiment_runs_at_a_tiny_scale(tmp_path, mnist_dir, capsys):
    """`bench/transfer_study.py` end to end: N=5, one seed, 20 steps, a base pretrained on 1,000 images."""
    from digitlab.data.mnist import load_splits

    study = _transfer_study()
    ExperimentConfig, pretrain = study.ExperimentConfig, study.pretrain
    args = ["--n", "5", "--seeds", "1", "--epochs", "1", "--min-steps", "20", "--pretrain-epochs", "1"]
    assert study.main([*args, "--pretrain-limit", "1000", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| 5 | 25 |" in out and "transfer vs scratch at N=5" in out
    for name in ("results.json", "table.md", "accuracy_vs_n.png"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [(r["method"], r["n_per_class"]) for r in saved["runs"]] == [
        ("frozen", 5),
        ("fine-tuned", 5),
        ("scratch", 5),
    ]
    assert saved["test_images"] == 4861  # every test image of the digits 5–9, and nothing else
    assert saved["pretrain"]["train_images"] == 1000
    assert "N=5: 20" in saved["budget"]  # max(min_steps, 1 pass of 25 images / 32) = 20 steps per method
    assert saved["summary"][0]["frozen"]["mean"] > 0.4  # 25 labels on a pretrained base: well above 5-way chance
    assert (tmp_path / "table.md").read_text().startswith("| N per class")
    assert Image.open(tmp_path / "accuracy_vs_n.png").size[0] > 300
    config = ExperimentConfig(pretrain_epochs=1, pretrain_limit=1000, out=str(tmp_path))
    lines = []
    pretrain(config, load_splits(None, config.validation_size), log=lines.append)  # the base is cached
    assert any("(cached)" in line for line in lines), lines


# --- fine-tuning on the draw page's corrections -------------------------------------------------------------


def _store(folder, image: Image.Image, label: int, predicted: int | None = None) -> dict:
    """A correction stored exactly as `POST /api/feedback` stores it."""
    from digitlab.data.preprocess import to_mnist_28x28
    from digitlab.serving.feedback import store_feedback

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return store_feedback(folder, buf.getvalue(), to_mnist_28x28(buf.getvalue()), label, predicted)


@pytest.fixture(scope="module")
def feedback_folder(tmp_path_factory, mnist):
    """30 drawings of real MNIST test digits on canvases, plus a blank one, a missing and an unreadable PNG."""
    from digitlab.data.synthetic import render

    folder = tmp_path_factory.mktemp("feedback")
    rng = np.random.default_rng(0)
    for i in range(30):
        style = ("canvas", "black-on-white", "thick", "transparent")[i % 4]
        _store(folder, render(mnist.x_test[100 + i], style, rng), int(mnist.y_test[100 + i]), predicted=0)
    assert _store(folder, Image.new("L", (300, 300)), 3)["blank"] is True
    gone = _store(folder, render(mnist.x_test[0], "canvas", rng), int(mnist.y_test[0]))
    (folder / gone["file"]).unlink()
    broken = _store(folder, render(mnist.x_test[1], "canvas", rng), int(mnist.y_test[1]))
    (folder / broken["file"]).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return folder


def test_finetune_on_synthetic_feedback_writes_a_new_calibrated_run(base_run, feedback_folder, tmp_path, capsys):
    from digitlab.models.saved import load_model

    out = tmp_path / "finetuned"
    args = ["finetune", "--model", str(base_run), "--feedback", str(feedback_folder), "--out", str(out)]
    assert main([*args, "--epochs", "2"]) == 0
    report = capsys.readouterr().out
    assert "MNIST test accuracy" in report and "held-out feedback accuracy" in report
    run = RunDir(out)
    for name in ("config.json", "model.keras", "metrics.json", "summary.txt", "history.csv", "calibration.json"):
        assert (out / name).is_file(), name
    metrics = json.loads(run.metrics.read_text())
    assert metrics["feedback"] == {
        "usable": 30,
        "trained_on": 24,
        "held_out": 6,
        "skipped": {"blank": 1, "missing": 1, "unreadable": 1, "no_digit_found": 0},
    }
    for when in ("before", "after"):
        assert 0 <= metrics[when]["feedback_holdout_accuracy"] <= 1 and 0.5 < metrics[when]["test"]["accuracy"] <= 1
    assert metrics["test"] == metrics["after"]["test"]
    assert metrics["after"]["test"]["accuracy"] > metrics["before"]["test"]["accuracy"] - 0.02  # replay: not forgotten
    assert metrics["after"]["feedback_train_accuracy"] >= metrics["before"]["feedback_train_accuracy"]
    assert [int(r["epoch"]) for r in run.read_history()] == [1, 2]
    config = run.read_config()
    assert config["parent"]["model_file"] == str((base_run / "model.keras").resolve())
    assert config["settings"]["model"] == "cnn" and config["finetune"]["replay_ratio"] == 3.0
    assert set(config["feedback"]["held_out"]).isdisjoint(config["feedback"]["trained_on"])
    loaded = load_model(out)  # what serve and predict use: the refitted temperature comes with it
    assert loaded.temperature == pytest.approx(metrics["temperature"]) and loaded.name == "cnn"
    assert "before    after" in run.summary.read_text()


def test_finetune_refuses_too_little_feedback(base_run, tmp_path, mnist, capsys):
    from digitlab.data.synthetic import render

    folder = tmp_path / "feedback"
    rng = np.random.default_rng(1)
    for i in range(5):
        _store(folder, render(mnist.x_test[i], "canvas", rng), int(mnist.y_test[i]))
    out = tmp_path / "out"
    assert main(["finetune", "--model", str(base_run), "--feedback", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "only 5 usable corrections" in err and "at least 20 (--min-feedback)" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "index.jsonl line 2 is not valid JSON"),
        ('{"file": "x.png", "label": 12}', "index.jsonl line 2: 'label' must be an integer 0-9"),
        ('{"file": "../../etc/passwd", "label": 1}', "index.jsonl line 2: 'file' must be a file name"),
        ("[1, 2]", "index.jsonl line 2 is not a JSON object"),
    ],
)
def test_a_malformed_index_line_is_a_clear_error(base_run, tmp_path, mnist, capsys, line, message):
    from digitlab.data.synthetic import render

    folder = tmp_path / "feedback"
    _store(folder, render(mnist.x_test[0], "canvas", np.random.default_rng(0)), int(mnist.y_test[0]))
    with open(folder / "index.jsonl", "a") as f:
        f.write(line + "\n")
    assert main(["finetune", "--model", str(base_run), "--feedback", str(folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_finetune_missing_inputs(base_run, tmp_path, capsys):
    assert main(["finetune", "--model", str(tmp_path / "nope"), "--feedback", str(tmp_path)]) == 2
    assert "no model at" in capsys.readouterr().err
    assert main(["finetune", "--model", str(base_run)]) == 2  # default RUN/feedback: nothing collected yet
    assert f"no feedback folder at {base_run / 'feedback'}" in capsys.readouterr().err
    assert main(["finetune", "--model", str(base_run), "--holdout", "1.5"]) == 2
    assert "--holdout must be between 0 and 1" in capsys.readouterr().err
