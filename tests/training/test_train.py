"""Training on small real subsets: models × loops, save/reload, resume, multi-worker, determinism, errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from digitlab.cli import main
from digitlab.errors import ConfigError
from digitlab.rundir import RunDir
from digitlab.training.config import resolve_config

SMALL = {"limit": 512, "validation_size": 500, "batch_size": 64, "patience": 0, "bn_momentum": 0.5}
COMBOS = [
    ("mlp", "fit"),
    ("mlp", "custom"),
    ("cnn", "fit"),
    ("cnn", "custom"),
    ("deep-cnn", "fit"),
    ("deep-cnn", "custom"),
    ("fast-cnn", "fit"),
    ("fast-cnn", "custom"),
    ("raw-mlp", "custom"),
]


def _train(tmp_path, model, loop, **overrides):
    from digitlab.training.train import train_and_evaluate

    settings = {**SMALL, "epochs": 2, **overrides}
    config = resolve_config(model, out=str(tmp_path / f"{model}-{loop}"), loop=loop, **settings)
    return train_and_evaluate(config, log=lambda *_: None)


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
@pytest.mark.parametrize("model, loop", COMBOS)
def test_every_model_and_loop_trains_with_falling_loss(tmp_path, mnist_dir, model, loop):
    result = _train(tmp_path, model, loop, lr=2e-3, schedule="constant")
    run = RunDir(result.run_dir)
    history = run.read_history()
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert history[1]["loss"] < history[0]["loss"], history
    assert result.metrics["test"]["accuracy"] > 0.5  # 2 epochs on 1k examples: far above chance
    for name in ("config.json", "model.keras", "history.csv", "metrics.json", "summary.txt", "logs"):
        assert (run.path / name).exists(), name
    assert not run.backup.exists() and not run.ckpt.exists()  # resume state is cleaned up on success
    config = run.read_config()
    assert config["settings"]["model"] == model and config["environment"]["tensorflow"]


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, mnist_dir):
    tmp = tmp_path_factory.mktemp("runs")
    return {kind: _train(tmp, kind, loop, epochs=1) for kind, loop in [("fast-cnn", "fit"), ("raw-mlp", "custom")]}


def test_model_keras_reloads_in_plain_keras_with_identical_predictions(trained_runs, mnist, tmp_path):
    """A fresh interpreter that never imports digitlab loads each model.keras and predicts the same."""
    x = (mnist.x_test[:256, ..., None] / 255.0).astype("float32")
    np.save(tmp_path / "x.npy", x)
    paths = {kind: str(result.run_dir / "model.keras") for kind, result in trained_runs.items()}
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        x = np.load({str(tmp_path / "x.npy")!r})
        for kind, path in {paths!r}.items():
            np.save({str(tmp_path)!r} + f"/{{kind}}.npy", np.asarray(keras.saving.load_model(path)(x)))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    for kind, result in trained_runs.items():
        expected = np.asarray(result.model(x, training=False))
        got = np.load(tmp_path / f"{kind}.npy")
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=kind)
        assert np.array_equal(got.argmax(1), expected.argmax(1))


def test_raw_mlp_also_exports_a_savedmodel(trained_runs, mnist):
    import tensorflow as tf

    result = trained_runs["raw-mlp"]
    loaded = tf.saved_model.load(str(result.run_dir / "savedmodel"))
    x = (mnist.x_test[:64, ..., None] / 255.0).astype("float32")
    np.testing.assert_allclose(
        loaded.signatures["serving_default"](image=tf.constant(x))["output_0"].numpy(),
        np.asarray(result.model(x)),
        atol=1e-5,
    )


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
def test_same_seed_same_result(tmp_path, mnist_dir):
    a = _train(tmp_path / "a", "fast-cnn", "fit", epochs=1, deterministic=True)
    b = _train(tmp_path / "b", "fast-cnn", "fit", epochs=1, deterministic=True)
    c = _train(tmp_path / "c", "fast-cnn", "fit", epochs=1, seed=1, deterministic=True)
    assert a.metrics["test"] == b.metrics["test"]
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert a.metrics["test"] != c.metrics["test"]


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen(
        [sys.executable, "-m", "digitlab", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        **kw,
    )


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_killed_run_resumes_and_finishes(tmp_path, mnist_dir, loop):
    out = tmp_path / "run"
    args = [
        "train",
        "--model",
        "mlp",
        "--loop",
        loop,
        "--epochs",
        "4",
        "--limit",
        "8000",
        "--batch-size",
        "32",
    ]
    args += ["--validation-size", "500", "--patience", "0", "--out", str(out)]
    proc = _cli(*args)
    run = RunDir(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(run.read_history()) < 1:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(run.read_history())
    assert 1 <= done < 4 and not run.finished

    again = _cli(*args)
    output, _ = again.communicate(timeout=180)
    assert again.returncode == 0, output
    assert "resuming" in output
    epochs = [int(r["epoch"]) for r in run.read_history()]
    assert epochs == [1, 2, 3, 4]
    assert run.finished and json.loads(run.metrics.read_text())["epochs_run"] == 4


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
def test_two_workers_train_in_lock_step_and_resume_after_kill_9(tmp_path, mnist_dir):
    """A 2-worker cluster killed (SIGKILL to launcher and workers) in its second epoch resumes with the same
    command: both workers restart from the chief's checkpoint and end in lock-step (same weights)."""
    import signal

    out = tmp_path / "mw"
    args = (
        "launch",
        "--workers",
        "2",
        "--timeout",
        "240",
        "--",
        "train",
        "--model",
        "mlp",
        "--loop",
        "custom",
        "--epochs",
        "3",
        "--limit",
        "2048",
        "--batch-size",
        "64",
        "--validation-size",
        "500",
        "--out",
        str(out),
    )
    first = _cli(*args, start_new_session=True)
    seen = ""
    for line in first.stdout:  # the chief reports epoch 2 (epoch 1's checkpoint is surely on disk): kill
        seen += line
        if "epoch 2/3" in line:
            break
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert "epoch 2/3" in seen, seen
    assert not RunDir(out).finished
    proc = _cli(*args)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert re.search(r"resumed from epoch [12] ", output), output
    prints = dict(re.findall(r"\[worker (\d)\] weights fingerprint (\w+)", output))
    assert set(prints) == {"0", "1"}, output
    assert prints["0"] == prints["1"]
    assert RunDir(out).finished
    config = RunDir(out).read_config()
    assert config["strategy"] == "MultiWorkerMirroredStrategy" and config["replicas"] == 2


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
def test_launch_stops_everyone_when_a_worker_dies(capsys):
    code = main(["launch", "--workers", "2", "--timeout", "60", "--", "train", "--epochs", "-1"])
    err = capsys.readouterr().err
    assert code == 2 and "exited with status 2; stopped the other workers" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet"], "unknown model 'resnet'"),
        (["--epochs", "-3"], "--epochs must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--recipe", "turbo"], "unknown recipe 'turbo'"),
        (["--model", "raw-mlp", "--loop", "fit"], "train it with --loop custom"),
        (["--strategy", "multi-worker"], "use --loop custom"),
    ],
)
def test_bad_settings_give_one_line_errors(capsys, args, message):
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_unwritable_out_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["train", "--out", str(blocker / "run"), "--limit", "64", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "not writable" in err and len(err.strip().splitlines()) == 1, err


TINY = ["--model", "mlp", "--epochs", "1", "--limit", "256", "--validation-size", "200", "--patience", "0"]


def test_training_again_reuses_a_finished_run_and_refuses_other_settings(tmp_path, mnist_dir, capsys):
    """Item 9 of issue #24: the same command twice (a tutorial's "Run all" twice) reuses the finished run."""
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    first = RunDir(out).metrics.read_text()
    capsys.readouterr()
    assert main(["train", *TINY, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "reusing it" in said and len(said.strip().splitlines()) == 1, said
    assert RunDir(out).metrics.read_text() == first  # not trained again
    assert main(["train", *TINY, "--seed", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "different settings" in err and len(err.strip().splitlines()) == 1, err

    # a run written before config.json had a schema (dropout null for "the model's default", no kind) is the
    # same run: it is reused too
    run = RunDir(out)
    record = json.loads(run.config.read_text())
    old = {"settings": {**record["settings"], "dropout": None}, "environment": record["environment"]}
    old["settings"].pop("split_seed")  # a setting that did not exist yet
    run.config.write_text(json.dumps(old))
    assert main(["train", *TINY, "--out", str(out)]) == 0
    assert "reusing it" in capsys.readouterr().out


def test_config_json_has_one_schema_with_effective_values(tmp_path, mnist_dir):
    result = _train(tmp_path, "cnn", "fit", epochs=1)
    config = RunDir(result.run_dir).read_config()
    assert (config["schema"], config["kind"]) == ("digitlab.run/2", "train")
    assert config["settings"]["dropout"] == 0.5  # the cnn's own rate, recorded as used (was null)
    assert config["deterministic"] is False  # a library call chooses; it did not ask
    assert resolve_config("deep-cnn").dropout == 0.5 and resolve_config("bn-cnn").dropout == 0.4
    assert resolve_config("mlp").dropout == 0.0 and resolve_config("cnn", dropout=0.25).dropout == 0.25
    summary = RunDir(result.run_dir).summary.read_text().splitlines()
    assert summary[0].startswith("model cnn") and summary[1].startswith("validation accuracy 0.")
    assert summary[2].startswith("test accuracy       0.")


def test_a_corrupt_config_json_is_a_one_line_error_not_default_settings(tmp_path, capsys):
    """A corrupt config.json once read as {}: evaluate then rebuilt split seed 0, maybe of training images."""
    from digitlab.errors import ModelError
    from digitlab.models.saved import load_model
    from digitlab.models.zoo import build_model

    run = tmp_path / "run"
    run.mkdir()
    build_model("mlp").save(run / "model.keras")
    (run / "config.json").write_text('{"settings": {"seed": 3, ')
    with pytest.raises(ModelError, match="config.json is corrupt"):
        load_model(run, network=False)
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert "is corrupt" in err and len(err.strip().splitlines()) == 1, err
    (run / "config.json").write_text("[1, 2]")  # JSON, but not a run's record
    with pytest.raises(ModelError, match="no 'settings' object"):
        load_model(run, network=False)


def test_determinism_is_the_callers_choice(monkeypatch):
    import tensorflow as tf

    from digitlab.training.train import set_seed

    calls = []
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: calls.append(1))
    set_seed(0)
    assert calls == []  # a library call that trains leaves the process's TensorFlow as it was
    set_seed(0, deterministic=True)
    assert calls == [1]


def test_a_model_that_fails_its_reload_check_is_never_saved(tmp_path):
    """model.keras appears only after the check passed: a failing (or killed) save leaves no model, no metrics."""
    from digitlab.errors import ModelError
    from digitlab.models.zoo import build_model

    run = RunDir(tmp_path / "run").create()

    def fails(path):
        assert path.suffix == ".keras" and path.is_file()
        raise ModelError("predicts differently")

    with pytest.raises(ModelError):
        run.finish({"test": {"accuracy": 1.0, "loss": 0.0}}, "model mlp", model=build_model("mlp"), check=fails)
    assert sorted(p.name for p in run.path.iterdir()) == [] and not run.finished


def test_resolve_config_precedence():
    fast = resolve_config(None, "fast")
    assert fast.model == "fast-cnn" and fast.schedule == "onecycle" and fast.epochs == 1 and fast.full_train
    assert resolve_config("mlp", "fast", epochs=7).epochs == 7
    assert resolve_config("raw-mlp").loop == "custom"
    with pytest.raises(ConfigError):
        resolve_config("cnn", dropout=1.5)
