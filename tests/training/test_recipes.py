"""The frontier recipes: augmentation, the `fast` and `best` settings, and ensembles as ordinary runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digitlab.cli import main
from digitlab.errors import ConfigError
from digitlab.training.config import model_options, resolve_config

QUIET = {"log": lambda *_: None}
TINY = {"limit": 512, "validation_size": 500, "epochs": 1, "batch_size": 64}


# --- augmentation -------------------------------------------------------------------------------------------


def test_augmentation_keeps_labels_shapes_and_range_and_changes_the_images(mnist):
    from digitlab.data.mnist import make_dataset

    x, y = mnist.x_train[:256], mnist.y_train[:256]
    plain = list(make_dataset(x, y, 64, shuffle=True, seed=3))
    warped = list(make_dataset(x, y, 64, shuffle=True, seed=3, augment=True))
    for (xp, yp), (xa, ya) in zip(plain, warped, strict=True):
        np.testing.assert_array_equal(yp.numpy(), ya.numpy())  # same examples, same order, labels untouched
        assert xa.shape == xp.shape and xa.dtype == xp.dtype
        assert float(np.min(xa)) >= 0.0 and float(np.max(xa)) <= 1.0
        changed = np.mean(np.abs(xa.numpy() - xp.numpy()).reshape(len(xa), -1).max(1) > 0.1)
        assert changed > 0.9  # nearly every digit moved
        ink_ratio = xa.numpy().sum((1, 2, 3)) / xp.numpy().sum((1, 2, 3))
        assert 0.6 < np.median(ink_ratio) < 1.4  # warped, not erased or smeared (zoom ±10% scales ink by ~±20%)
    again = list(make_dataset(x, y, 64, shuffle=True, seed=3, augment=True))
    np.testing.assert_array_equal(warped[0][0].numpy(), again[0][0].numpy())  # seeded: reproducible


def test_a_zero_range_affine_is_the_identity(mnist):
    """The matrices are centred correctly: no rotation, zoom, shear or shift leaves every pixel where it was."""
    import tensorflow as tf

    from digitlab.data.augment import Affine, augment_batch

    x = tf.constant(mnist.x_test[:16, ..., None] / 255.0, tf.float32)
    out = augment_batch(x, tf.constant([1, 2], tf.int64), Affine(0.0, 0.0, 0.0, 0.0))
    np.testing.assert_allclose(out.numpy(), x.numpy(), atol=1e-5)


def test_every_random_affine_turns_about_the_image_centre():
    """Rotation, zoom and shear move pixels around the centre (13.5, 13.5), never around a corner: with no
    shift, every sampled matrix maps the centre to itself."""
    import tensorflow as tf

    from digitlab.data.augment import Affine, affine_matrices

    m = affine_matrices(tf.constant([5, 6], tf.int64), 64, 28, Affine(rotation=30.0, zoom=0.2, shift=0.0, shear=0.3))
    m = m.numpy()
    assert np.ptp(m[:, 0]) > 0.1  # the matrices really differ
    c = 13.5
    np.testing.assert_allclose(m[:, 0] * c + m[:, 1] * c + m[:, 2], c, atol=1e-4)
    np.testing.assert_allclose(m[:, 3] * c + m[:, 4] * c + m[:, 5], c, atol=1e-4)


def test_augmentation_is_off_outside_training(mnist):
    """Validation, test and serving pipelines never warp: the default dataset is the pixels / 255."""
    from digitlab.data.mnist import make_dataset

    (x, _), *_ = list(make_dataset(mnist.x_test[:32], mnist.y_test[:32], 32))
    np.testing.assert_allclose(x.numpy()[..., 0], mnist.x_test[:32] / 255.0, atol=1e-7)
    with pytest.raises(ValueError):
        make_dataset(mnist.x_test[:32], None, 32, augment=True)


def test_handwriting_augmentation_is_seeded_keeps_range_and_keeps_the_digit(mnist):
    """Reproducible under a seed, different under another, in [0, 1], and every family leaves a readable digit:
    each augmented image still correlates with its original warped the same way more than with other digits."""
    import tensorflow as tf

    from digitlab.data.augment import handwriting_batch

    x = tf.constant(mnist.x_test[:128, ..., None] / 255.0, tf.float32)
    a = handwriting_batch(x, tf.constant([4, 2], tf.int64)).numpy()
    np.testing.assert_array_equal(a, handwriting_batch(x, tf.constant([4, 2], tf.int64)).numpy())
    assert np.abs(a - handwriting_batch(x, tf.constant([5, 2], tf.int64)).numpy()).max() > 0.5
    assert a.shape == x.shape and a.dtype == np.float32 and a.min() >= 0.0 and a.max() <= 1.0
    assert np.mean(np.abs(a - x.numpy()).reshape(128, -1).max(1) > 0.1) > 0.9  # nearly every digit changed
    centred = a.reshape(128, -1) - a.reshape(128, -1).mean(1, keepdims=True)
    assert (centred.std(1) > 0.015).all()  # faint at worst (thinned, low contrast), never a flat image


def test_handwriting_families_each_do_what_they_say(mnist):
    """With one family forced on and the warp off, each changes the image the way its name says."""
    import dataclasses

    import tensorflow as tf

    from digitlab.data.augment import Affine, Handwriting, handwriting_batch

    x = tf.constant(mnist.x_test[:64, ..., None] / 255.0, tf.float32)
    still = Handwriting(
        Affine(0, 0, 0, 0), elastic=0.0, stroke=0, outline=0, blur=0, noise=0, background=0, strokes=0, clean=0.0
    )
    seed = tf.constant([1, 1], tf.int64)
    np.testing.assert_allclose(handwriting_batch(x, seed, still).numpy(), x.numpy(), atol=1e-5)  # identity
    background = handwriting_batch(x, seed, dataclasses.replace(still, background=1.0)).numpy()
    paper = x.numpy() < 0.01
    assert np.median(background[paper]) > 0.05  # a grey background under the digit
    outline = handwriting_batch(x, seed, dataclasses.replace(still, outline=1.0)).numpy()
    core = x.numpy() > 0.99
    assert outline[core].mean() < 0.6 * x.numpy()[core].mean()  # hollow: the strokes' cores go dark
    warped = handwriting_batch(x, seed, dataclasses.replace(still, elastic=1.0)).numpy()
    assert 0.5 < warped.sum() / x.numpy().sum() < 1.5 and np.abs(warped - x.numpy()).max() > 0.3
    skipped = handwriting_batch(x, seed, dataclasses.replace(still, skip=1.0)).numpy()
    assert np.all(skipped <= x.numpy() + 1e-6)  # a skipping pen only removes ink
    lost = (x.numpy() - skipped).sum(axis=(1, 2, 3)) / x.numpy().sum(axis=(1, 2, 3))
    assert np.median(lost) > 0.02 and lost.max() < 0.5  # gaps in most digits, never the digit erased


def test_every_handwriting_style_is_a_valid_setting():
    from digitlab.data.augment import STYLES
    from digitlab.errors import ConfigError

    for name in STYLES:
        assert resolve_config(None, "robust", handwriting_style=name).handwriting_style == name
    with pytest.raises(ConfigError, match="--handwriting-style must be one of default, mild"):
        resolve_config(None, "robust", handwriting_style="nope")


# --- recipes ------------------------------------------------------------------------------------------------


def test_recipes_say_what_they_are():
    fast = resolve_config(None, "fast")
    assert (fast.model, fast.batch_size, fast.beta_1, fast.beta_2, fast.keep) == ("fast-cnn", 256, 0.7, 0.9, "last")
    best = resolve_config(None, "best")
    assert best.model == "bn-cnn" and best.augment and best.ema > 0 and best.optimizer == "adamw"
    assert best.split_seed == 0 and best.keep == "last" and best.patience == 0
    assert model_options(best).weight_decay == 0.0  # AdamW decays the weights; no L2 on top
    robust = resolve_config(None, "robust")
    assert robust.model == "fast-cnn" and robust.handwriting and not robust.full_train  # validation calibrates
    assert resolve_config(None, "best", seed=4).split_seed == 0  # every seed holds out the same images
    with pytest.raises(ConfigError, match="--full-train"):
        resolve_config("cnn", full_train=True)  # keep best + early stopping would choose on seen images
    assert resolve_config(None, "best", full_train=True).full_train
    with pytest.raises(ConfigError, match="--keep last"):
        resolve_config("cnn", ema=0.99)  # the best epoch's raw weights would silently replace the average
    with pytest.raises(ConfigError, match="--augment not supported with --model transfer"):
        resolve_config("transfer", base="mobilenetv2", augment=True)


def test_model_sizes_match_their_references():
    from digitlab.models.zoo import build_model

    assert build_model("bn-cnn").count_params() == 327_242  # Deotte's ~327k
    assert build_model("fast-cnn").count_params() == 215_194  # conv24-5×5, conv32-3×3, dense-256


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
def test_tiny_run_of_recipe_best(tmp_path, mnist_dir):
    out = tmp_path / "best"
    assert main(["train", "--recipe", "best", "--out", str(out), "--limit", "512", "--epochs", "1"]) == 0
    config = json.loads((out / "config.json").read_text())["settings"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert config["recipe"] == "best" and metrics["epochs_run"] == 1
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0 and "seen_in_training" not in metrics["validation"]


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
def test_recipe_fast_and_the_public_records_settings_as_flags(tmp_path, mnist_dir):
    """--recipe fast is one epoch on all 60k images; one tiny run with the record's other settings switched on:
    standardization inside the model, PyTorch's initialisation and OneCycleLR, one fixed data order. The saved
    model still takes [0, 1] pixels."""
    import keras

    from digitlab.data.mnist import load_splits, training_order

    fast = resolve_config(None, "fast")
    assert (fast.epochs, fast.full_train, fast.schedule, fast.initializer) == (1, True, "onecycle", "he_normal")
    assert (fast.standardize, fast.order) == (False, "reshuffle")  # chosen on validation (bench/fast_recipe.py)
    out = tmp_path / "fast"
    record = ["--standardize", "--order", "fixed", "--initializer", "pytorch", "--schedule", "torch-onecycle"]
    assert main(["train", "--recipe", "fast", *record, "--out", str(out), "--limit", "512"]) == 0
    config = json.loads((out / "config.json").read_text())
    s = config["settings"]
    assert (s["epochs"], s["standardize"], s["order"], s["initializer"]) == (1, True, "fixed", "pytorch")
    assert s["schedule"] == "torch-onecycle" and s["full_train"] and config["train_examples"] == 512
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation"]["seen_in_training"] and metrics["best_epoch"] is None  # nothing held out
    assert {"data", "first_step", "epochs", "predict", "save", "reload_check"} <= set(metrics["seconds"])
    model = keras.saving.load_model(out / "model.keras", compile=False)
    first = model.layers[1]
    assert isinstance(first, keras.layers.Rescaling) and model.input_shape == (None, 28, 28, 1)
    np.testing.assert_allclose(first(np.array([0.1307, 1.0])), [0.0, (1 - 0.1307) / 0.3081], rtol=1e-5)
    # the order: one seeded permutation, the same every epoch, a different one per seed
    splits = load_splits(mnist_dir, 5000, 0, limit=512)
    x0, y0 = training_order(splits, "fixed", 0)
    assert np.array_equal(training_order(splits, "fixed", 0)[1], y0) and not np.array_equal(y0, splits.y_train)
    permutation = np.random.default_rng(0).permutation(512)  # images and labels move together
    assert np.array_equal(x0, splits.x_train[permutation]) and np.array_equal(y0, splits.y_train[permutation])
    assert not np.array_equal(training_order(splits, "fixed", 1)[1], y0)
    assert training_order(splits, "reshuffle", 0)[1] is splits.y_train  # tf.data shuffles it, every epoch


def test_pytorch_initialisation_bounds():
    """kaiming_uniform(a=√5) weights and U(±1/√fan_in) biases, as torch.nn.Conv2d and Linear start."""
    from digitlab.models.registry import ModelOptions
    from digitlab.models.zoo import build_model

    model = build_model("fast-cnn", ModelOptions(initializer="pytorch"))
    weighted = [layer for layer in model.layers if layer.get_weights()]
    for layer, fan_in in zip(weighted, (25, 24 * 9, 800, 256), strict=True):
        kernel, bias = layer.get_weights()
        bound = 1 / np.sqrt(fan_in) * (1 + 1e-6)  # a float32 draw may round onto the float32 bound, just above
        assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
        assert kernel.std() == pytest.approx(bound / np.sqrt(3), rel=0.2) and np.abs(bias).max() > 0


def test_torch_onecycle_matches_pytorchs_onecyclelr_defaults():
    """Cosine up from peak/25 over 30% of the steps (phase end at 0.3·T − 1, as PyTorch), cosine down to
    peak/25e4; checked against PyTorch's formula written out."""
    import math

    from digitlab.training.optim import TorchOneCycle

    total, peak = 235, 1e-2

    def pytorch(step):  # torch.optim.lr_scheduler.OneCycleLR, anneal_strategy="cos", three_phase=False
        initial, end1 = peak / 25, 0.3 * total - 1

        def cos(a, b, pct):
            return b + (a - b) / 2 * (math.cos(math.pi * pct) + 1)

        if step <= end1:
            return cos(initial, peak, step / end1)
        return cos(peak, initial / 1e4, (step - end1) / (total - 1 - end1))

    schedule = TorchOneCycle(peak, total)
    rates = np.array([float(schedule(step)) for step in range(total)])
    np.testing.assert_allclose(rates, [pytorch(step) for step in range(total)], rtol=1e-4, atol=1e-10)
    assert rates[0] == pytest.approx(peak / 25, rel=1e-5) and rates[-1] == pytest.approx(peak / 25e4, rel=1e-5)
    assert int(rates.argmax()) == 70  # ⌈0.3·235 − 1⌉


def _former_one_cycle(step: np.ndarray, peak: float, total_steps: int, warmup=0.25, final_div=100.0) -> np.ndarray:
    """digitlab's former hand-written OneCycle schedule, verbatim in NumPy (the reference for `one_cycle`)."""
    total = max(total_steps, 1)
    up = max(total * warmup, 1.0)
    start = peak / 10.0
    warm = start + (peak - start) * step / up
    progress = np.clip((step - up) / max(total - up, 1.0), 0.0, 1.0)
    end = peak / final_div
    anneal = end + (peak - end) * 0.5 * (1.0 + np.cos(np.pi * progress))
    return np.where(step < up, warm, anneal)


@pytest.mark.parametrize("total", [1, 2, 3, 7, 215, 430, 4300])
def test_one_cycle_on_keras_cosine_decay_gives_the_former_curve_at_every_step(total):
    """`--schedule onecycle` moved onto keras' CosineDecay(warmup_target, warmup_steps): the same rate at every
    step (and past the end), so recipes that use it train as before."""
    import tensorflow as tf

    from digitlab.training.optim import one_cycle

    schedule = tf.function(one_cycle(3e-3, total))  # traced once: the step loop below then costs ~0.1 ms a step
    steps = np.arange(total + 5, dtype=np.float32)
    got = np.array([float(schedule(tf.constant(s))) for s in steps])
    np.testing.assert_allclose(got, _former_one_cycle(steps.astype(np.float64), 3e-3, total), rtol=1e-5, atol=1e-9)


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
def test_full_train_trains_on_all_images_and_says_validation_was_seen(tmp_path, mnist_dir):
    from digitlab.data.mnist import load_splits

    held = load_splits(mnist_dir, 5000, 0)
    full = load_splits(mnist_dir, 5000, 0, full_train=True)
    assert len(full.x_train) == 60000 and np.array_equal(full.x_val, held.x_val)
    out = tmp_path / "full"
    args = ["--recipe", "best", "--model", "mlp", "--full-train", "--limit", "256", "--epochs", "1", "--out", str(out)]
    assert main(["train", *args]) == 0
    assert json.loads((out / "metrics.json").read_text())["validation"]["seen_in_training"] is True
    from digitlab.evaluation.evaluate import evaluate_model

    evaluate_model(out, report=False)  # no temperature fitted on images the model trained on
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["temperature"] == 1.0 and calibration["fitted_on"].startswith("nothing")


# --- ensembles ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def members(tmp_path_factory, mnist_dir):
    """Two tiny real runs of different seeds that share one validation split."""
    from digitlab.training.train import train_and_evaluate

    tmp = tmp_path_factory.mktemp("members")
    runs = []
    for seed in (0, 1):
        config = resolve_config("cnn", seed=seed, split_seed=0, out=str(tmp / f"seed-{seed}"), **TINY)
        runs.append(train_and_evaluate(config, **QUIET).run_dir)
    return runs


def test_ensemble_is_the_mean_of_its_members_and_reloads_in_plain_keras(members, tmp_path, mnist):
    import keras
    from scipy.special import softmax

    from digitlab.training.ensemble_run import make_ensemble

    metrics = make_ensemble(members, tmp_path / "ens", **QUIET)
    assert metrics["tta"] == {"asked": "off", "used": False}  # off unless chosen
    reloaded = keras.saving.load_model(tmp_path / "ens" / "model.keras")  # plain Keras, safe mode
    assert not any("tta" in layer.name for layer in reloaded.layers)
    x = (mnist.x_test[:200] / 255.0).astype(np.float32)[..., None]
    single = [keras.saving.load_model(r / "model.keras").predict(x, verbose=0) for r in members]
    mean = np.mean([softmax(s.astype(np.float64), axis=1) for s in single], axis=0)
    np.testing.assert_allclose(softmax(reloaded.predict(x, verbose=0).astype(np.float64), axis=1), mean, atol=1e-5)
    calibration = json.loads((tmp_path / "ens" / "calibration.json").read_text())
    assert calibration["fitted_on"] == "validation" and calibration["temperature"] > 0


def mnist_test_pixels(n: int) -> np.ndarray:
    from digitlab.data.mnist import load_mnist

    return (load_mnist().x_test[:n] / 255.0).astype(np.float32)


def test_an_ensemble_is_an_ordinary_run(members, tmp_path, mnist_dir):
    """evaluate, predict and compare take it like any run directory."""
    from digitlab.evaluation.evaluate import evaluate_model
    from digitlab.inference.predictor import Predictor
    from digitlab.training.ensemble_run import make_ensemble

    run = tmp_path / "ens"
    made = make_ensemble(members, run, **QUIET)
    result = evaluate_model(run, report=False)
    assert result.metrics["accuracy"] == pytest.approx(made["test"]["accuracy"])
    predictor = Predictor.load(run, **QUIET)
    probs = predictor.probabilities(mnist_test_pixels(8))
    assert probs.shape == (8, 10) and np.allclose(probs.sum(1), 1.0)
    assert main(["compare", str(run), str(members[0]), "--out", str(tmp_path / "cmp")]) == 0
    assert main(["export", str(run), "--format", "onnx"]) == 0  # parity-checked like any model


def test_explaining_an_ensemble_attributes_the_whole_and_says_whose_layers_it_shows(members, tmp_path):
    from digitlab.explain.engine import Explainer
    from digitlab.models.saved import load_model
    from digitlab.training.ensemble_run import make_ensemble

    make_ensemble(members, tmp_path / "ens", **QUIET)
    model = load_model(tmp_path / "ens").model
    explainer = Explainer(model)
    pixels = mnist_test_pixels(1)[0]
    np.testing.assert_allclose(explainer.logits(pixels), model.predict(pixels[None, ..., None], verbose=0), atol=1e-5)
    assert explainer.members == 2 and explainer.activations(pixels)[-1].kind == "logits"
    ig = explainer.integrated_gradients(pixels, explainer.score_weights(3))
    assert ig["values"].shape == (28, 28)


def test_tta_is_kept_only_when_validation_prefers_it(members, tmp_path):
    import keras

    from digitlab.models.ensemble_network import build_ensemble
    from digitlab.training.ensemble_run import make_ensemble

    metrics = make_ensemble(members, tmp_path / "auto", tta="auto", **QUIET)
    errors = metrics["tta"]["validation_errors"]
    assert metrics["tta"]["used"] == (errors["with"] < errors["without"])
    saved = keras.saving.load_model(tmp_path / "auto" / "model.keras")
    assert any("tta_shift" in layer.name for layer in saved.layers) == metrics["tta"]["used"]
    shifted = build_ensemble([keras.saving.load_model(r / "model.keras") for r in members], tta=True)
    assert sum("tta_shift" in layer.name for layer in shifted.layers) == 4  # the image and its 4 one-pixel shifts


def test_ensemble_refuses_what_it_cannot_calibrate(members, tmp_path, mnist_dir, capsys):
    from digitlab.training.train import train_and_evaluate

    other = train_and_evaluate(resolve_config("mlp", seed=2, out=str(tmp_path / "other-split"), **TINY), **QUIET)
    cases = [
        ([str(members[0])], "at least two runs"),
        ([str(members[0]), str(other.run_dir)], "different validation splits"),
        ([str(members[0]), str(members[0])], "named twice"),
        ([str(members[0]), str(tmp_path / "missing")], "no model at"),
    ]
    for runs, message in cases:
        assert main(["ensemble", *runs, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x" / "model.keras").exists()


# --- Outlier Exposure ---------------------------------------------------------------------------------------------


def test_outlier_exposure_loss_is_cross_entropy_for_digits_and_to_uniform_for_outliers():
    import keras
    from scipy.special import log_softmax

    from digitlab.training.optim import OUTLIER, outlier_exposure_loss

    logits = np.array([[3.0, 0.0, -1.0] + [0.0] * 7, [0.5] * 10, [4.0] + [0.0] * 9], np.float32)
    y = np.array([0, OUTLIER, OUTLIER], np.int32)
    got = keras.ops.convert_to_numpy(outlier_exposure_loss(0.5)(y, logits))
    log_p = log_softmax(logits.astype(np.float64), axis=1)
    np.testing.assert_allclose(got, [-log_p[0, 0], 0.5 * -log_p[1].mean(), 0.5 * -log_p[2].mean()], rtol=1e-5)
    assert got[1] < got[2]  # a confident answer on a non-digit costs more than a uniform one


def test_outliers_are_mixed_in_with_their_own_label(mnist):
    from digitlab.training.optim import OUTLIER
    from digitlab.training.train import with_outliers

    x, y = mnist.x_train[:500], mnist.y_train[:500]
    x_all, y_all = with_outliers(x, y, seed=0)
    outliers = y_all == OUTLIER
    assert 40 <= outliers.sum() <= 50 and len(x_all) == 500 + outliers.sum() and y_all.dtype == np.int32
    assert outliers[: len(x_all) // 2].any() and outliers[len(x_all) // 2 :].any()  # spread, not appended
    assert sorted(y_all[~outliers].tolist()) == sorted(y.tolist())


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
def test_a_tiny_run_with_outlier_exposure(tmp_path, mnist_dir):
    out = tmp_path / "oe"
    args = ["train", "--recipe", "fast", "--no-full-train", "--outlier-exposure", "0.5", "--limit", "1000"]
    assert main([*args, "--epochs", "1", "--validation-size", "500", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["settings"]["outlier_exposure"] == 0.5
    assert json.loads((out / "metrics.json").read_text())["validation"]["accuracy"] > 0.3  # 1,000 images, 1 epoch
    with pytest.raises(ConfigError, match="--outlier-exposure"):
        resolve_config(None, "fast", outlier_exposure=0.5, loop="custom")


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
def test_a_tiny_run_with_served_copies_trains_on_twice_the_digits(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("DIGITLAB_DATA", str(mnist_dir))  # the copies' cache beside the data the test uses
    out = tmp_path / "served"
    args = ["train", "--recipe", "fast", "--no-full-train", "--served-copies", "--limit", "1000", "--epochs", "1"]
    assert main([*args, "--validation-size", "500", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["served_copies"] and config["train_examples"] == 2000
    assert json.loads((out / "metrics.json").read_text())["validation"]["accuracy"] > 0.3  # 1,000 images, 1 epoch


def test_whether_validation_digits_were_seen_is_decided_in_one_place(tmp_path):
    """evaluate, the refusal and finetune read `LoadedModel.validation_seen` (finetune once ignored --full-train
    parents and fitted a temperature on digits the parent trained on)."""
    from digitlab.models.contract import Contract
    from digitlab.models.saved import LoadedModel

    def loaded(settings, contract=None):
        return LoadedModel(None, "m", tmp_path / "model.keras", tmp_path, settings, contract=contract)

    assert loaded({"full_train": False}).validation_seen == ""
    assert "--full-train" in loaded({"full_train": True}).validation_seen
    assert "imported" in loaded({}, Contract(format="onnx", file="source.onnx")).validation_seen
