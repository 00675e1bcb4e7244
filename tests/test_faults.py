"""Faults a user meets: a full disk, model files from someone else, a burst of corrections, a killed run.

The full-disk tests mount a small tmpfs (root only; skipped elsewhere, with the reason)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from digitlab.atomic import atomic_write_bytes
from digitlab.cli import main


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs, nearly filled: writes of more than a few KB fail with ENOSPC."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not root'})")
    try:
        (mount / "filler").write_bytes(b"\0" * (1024 * 1024 - 64 * 1024))  # leave 64 KB
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name != "filler")


def test_atomic_write_on_a_full_disk_leaves_nothing_half_written(full_disk):
    (full_disk / "keep.json").write_text('{"ok": true}')
    with pytest.raises(OSError):
        atomic_write_bytes(full_disk / "keep.json", b"x" * 200_000)
    assert (full_disk / "keep.json").read_text() == '{"ok": true}'  # the old file is untouched
    assert _leftovers(full_disk) == ["keep.json"]  # and no .part file is left behind


def test_export_to_a_full_disk_is_one_line(trained_run, full_disk, capsys):
    assert main(["export", str(trained_run), "--format", "onnx", "--out", str(full_disk / "export")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("digitlab: error:") and "\n" not in err and "No space left" in err, err
    assert not [n for n in _leftovers(full_disk) if n.endswith((".onnx", ".json"))]


def test_predict_saving_to_a_full_disk_is_one_line(tiny_cnn, full_disk, tmp_path, mnist, capsys):
    from PIL import Image

    for i in range(40):
        Image.fromarray(255 - mnist.x_test[i]).resize((300, 300)).save(tmp_path / f"{i}.png")
    seen = str(full_disk / "seen")
    code = main(
        [
            "predict",
            str(tmp_path),
            "--model",
            str(tiny_cnn),
            "--runtime",
            "keras",
            "--save-processed",
            seen,
            "--workers",
            "1",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("digitlab: error:") and "No space left" in err, err
    assert not [n for n in _leftovers(full_disk) if n.endswith(".part")]


def test_feedback_on_a_full_disk_is_507_and_the_index_stays_whole(tiny_cnn, full_disk, mnist):
    from fastapi.testclient import TestClient
    from PIL import Image

    from digitlab.serving.app import ServeConfig, create_app

    folder = full_disk / "feedback"
    app = create_app(ServeConfig(model=str(tiny_cnn), feedback_dir=str(folder), runtime="keras"))
    noise = np.random.default_rng(0).integers(0, 255, (400, 400), dtype=np.uint8)  # ~160 KB as PNG: does not fit
    stored, refused = 0, 0
    with TestClient(app, raise_server_exceptions=False) as client:
        for image in (255 - mnist.x_test[0], noise, 255 - mnist.x_test[1]):
            buf = io.BytesIO()
            Image.fromarray(image).resize((280, 280)).save(buf, format="PNG")
            url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
            r = client.post("/api/feedback", json={"image": url, "label": 7})
            assert r.status_code in (200, 507), r.text
            stored += r.status_code == 200
            refused += r.status_code == 507
            if r.status_code == 507:
                assert "could not be stored" in r.json()["error"]
    assert refused >= 1
    lines = (folder / "index.jsonl").read_text().splitlines() if (folder / "index.jsonl").exists() else []
    assert len(lines) == stored and all((folder / json.loads(line)["file"]).is_file() for line in lines)
    assert len(list(folder.glob("*.png"))) == stored  # no orphan picture, no .part file
    assert not list(folder.glob(".*part"))


def _lambda_model(path: Path, canary: Path) -> None:
    """A model.keras with a Lambda layer whose code would write `canary` if it ever ran."""
    code = (
        "import keras\n"
        f"canary = {str(canary)!r}\n"
        "def payload(x):\n"
        "    open(canary, 'w').write('ran')\n"
        "    return x\n"
        "inputs = keras.Input((28, 28, 1))\n"
        "x = keras.layers.Lambda(lambda t: (open(canary, 'w').write('ran'), t)[1])(inputs)\n"
        "outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))\n"
        f"keras.Model(inputs, outputs).save({str(path)!r})\n"
        "import os; os.remove(canary)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


def test_a_model_file_with_code_in_it_is_refused_and_never_run(tmp_path, capsys):
    canary = tmp_path / "canary"
    model = tmp_path / "model.keras"
    _lambda_model(model, canary)
    assert model.is_file() and not canary.exists()
    commands = [
        ["evaluate", str(model)],
        ["predict", str(model), "--model", str(model), "--runtime", "keras"],
        ["export", str(model), "--format", "onnx"],
        ["explain", str(model), "--model", str(model)],
    ]
    for args in commands:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("digitlab: error:") and ("lambda" in err.lower() or "unsafe" in err.lower()), err
    assert not canary.exists()


def test_truncated_and_garbage_model_files_are_one_line(tiny_cnn, tmp_path, capsys):
    data = (tiny_cnn / "model.keras").read_bytes()
    for name, content in [("truncated.keras", data[: len(data) // 2]), ("garbage.keras", os.urandom(4096))]:
        (tmp_path / name).write_bytes(content)
        assert main(["evaluate", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("digitlab: error: cannot load") and "\n" not in err, err


def test_200_concurrent_corrections_are_all_stored_whole(trained_run, tmp_path, mnist, loopback_server):
    import httpx
    from PIL import Image

    from digitlab.serving.app import ServeConfig, create_app

    folder = tmp_path / "feedback"
    app = create_app(ServeConfig(model=str(trained_run), feedback_dir=str(folder)))
    buf = io.BytesIO()
    Image.fromarray(255 - mnist.x_test[0]).resize((280, 280)).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

    async def burst(port):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            posts = [
                client.post("/api/feedback", json={"image": url, "label": i % 10, "predicted": 7}) for i in range(200)
            ]
            return await asyncio.gather(*posts)

    with loopback_server(app) as port:
        responses = asyncio.run(burst(port))
    assert [r.status_code for r in responses] == [200] * 200
    lines = (folder / "index.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses: none interleaved or cut
    assert len(records) == 200 and len({r["id"] for r in records}) == 200
    assert sorted(r["label"] for r in records) == sorted(i % 10 for i in range(200))
    assert len(list(folder.glob("*.png"))) == 200 and all((folder / r["file"]).is_file() for r in records)


@pytest.mark.slow
def test_custom_loop_killed_twice_at_random_moments_ends_bit_identical(tmp_path, mnist_dir):
    """Kill -9 twice, at random moments (mid-epoch, mid-checkpoint), resume each time: the final weights equal an
    uninterrupted run's, bit for bit. (The fit loop resumes too, but is not bit-identical: Keras'
    BackupAndRestore restarts the shuffled dataset at its first epoch's order.)"""
    import keras

    args = [
        "train",
        "--model",
        "mlp",
        "--loop",
        "custom",
        "--epochs",
        "4",
        "--limit",
        "8000",
        "--batch-size",
        "32",
        "--validation-size",
        "500",
        "--patience",
        "0",
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    subprocess.run(
        [sys.executable, "-m", "digitlab", *args, "--out", str(tmp_path / "whole")],
        check=True,
        capture_output=True,
        env=env,
        timeout=300,
    )
    rng = random.Random(0)
    killed = tmp_path / "killed"
    kills = 0
    while True:  # kill at a random moment, up to twice; the last launch runs to the end
        proc = subprocess.Popen(
            [sys.executable, "-m", "digitlab", *args, "--out", str(killed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        if kills < 2:
            time.sleep(rng.uniform(3.5, 6.0))  # start-up is ~3 s, an epoch ~1-2 s: mid-epoch or mid-checkpoint
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
        output = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, output[-2000:]
        break
    assert kills >= 1
    a = keras.saving.load_model(tmp_path / "whole" / "model.keras").get_weights()
    b = keras.saving.load_model(killed / "model.keras").get_weights()
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.slow  # trains, or starts TensorFlow in subprocesses
@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_a_run_killed_after_its_last_epoch_finishes_without_training_again(tmp_path, mnist_dir, monkeypatch, loop):
    """Killed between the last epoch and metrics.json (here: the end raises), the same command writes the run
    from the saved state; it does not train from scratch or add history rows."""
    from digitlab.rundir import RunDir
    from digitlab.training import train as t
    from digitlab.training.config import resolve_config

    class Killed(Exception):
        pass

    def killed(*args, **kwargs):
        raise Killed

    config = resolve_config("mlp", epochs=2, limit=512, validation_size=500, patience=0, loop=loop, out=str(tmp_path))
    monkeypatch.setattr(t, "finish_run", killed)
    with pytest.raises(Killed):
        t.train_and_evaluate(config, log=lambda *_: None)
    monkeypatch.undo()
    trained_again = []
    t.train_and_evaluate(config, log=lambda *_: None, on_epoch_end=lambda epoch, model: trained_again.append(epoch))
    assert trained_again == []
    assert [row["epoch"] for row in RunDir(tmp_path).read_history()] == [1, 2]
    assert RunDir(tmp_path).finished


def _trusted_or_absent(command: str, target: Path) -> None:
    """What a later command would trust after a kill: either it is absent/stale (and gets redone), or whole."""
    if command == "fetch":
        from digitlab.data.fetch import verify_data_dir
        from digitlab.data.mnist import load_mnist

        if not verify_data_dir(target):  # no problems: it claims to be whole, so it must load
            assert load_mnist(target, fetch=False).x_train.shape == (60000, 28, 28)
    elif command == "evaluate":
        for name in ("calibration.json", "report/metrics.json"):
            if (target / name).exists():
                json.loads((target / name).read_text())  # whole, never cut
    else:
        from digitlab.models import export
        from digitlab.models.saved import load_model

        loaded = load_model(target, network=False)
        current, _ = export.is_current(target / "export", "onnx", loaded.file_digest(), loaded.temperature)
        if current:
            import onnxruntime

            onnxruntime.InferenceSession(str(target / "export" / "model.onnx"))


@pytest.mark.slow
@pytest.mark.parametrize("command", ["fetch", "evaluate", "export"])
def test_kill_9_during_fetch_evaluate_export_leaves_nothing_half_written_that_is_trusted(
    command, trained_run, mnist_dir, tmp_path
):
    """Killed at random moments, then run to the end: after every kill, whatever a later command would trust
    parses and checks out (or is absent or stale, and is redone); the last run succeeds. (Bounded for CI: one
    kill each for the TensorFlow commands, two for fetch.)"""
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.keras", "config.json", "metrics.json"):
        shutil.copy(trained_run / name, run / name)
    args, target, window = {
        "fetch": (["fetch", "--from", str(mnist_dir), "--data-dir", str(tmp_path / "data")], tmp_path / "data", 1.5),
        "evaluate": (["evaluate", str(run)], run, 10.0),
        "export": (["export", str(run), "--format", "onnx"], run, 10.0),
    }[command]
    rng = random.Random(command)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for _ in range(2 if command == "fetch" else 1):
        proc = subprocess.Popen(
            [sys.executable, "-m", "digitlab", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        time.sleep(rng.uniform(0.3, window))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _trusted_or_absent(command, target)
    done = subprocess.run(
        [sys.executable, "-m", "digitlab", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-1000:]
    _trusted_or_absent(command, target)


@pytest.mark.slow
def test_a_server_killed_during_a_burst_of_corrections_leaves_an_index_finetune_reads(trained_run, tmp_path, mnist):
    """kill -9 `digitlab serve` while 2 workers take corrections: every index line that exists is whole and
    points at a whole PNG (a PNG without a line may remain; nothing reads it), and finetune reads the folder."""
    import concurrent.futures
    import socket
    import urllib.error
    import urllib.request

    from PIL import Image

    from digitlab.training.finetune import read_feedback

    folder = tmp_path / "feedback"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "digitlab",
            "serve",
            "--model",
            str(trained_run),
            "--port",
            str(port),
            "--workers",
            "2",
            "--feedback-dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.2)
        buf = io.BytesIO()
        Image.fromarray(255 - mnist.x_test[0]).resize((280, 280)).save(buf, format="PNG")
        body = json.dumps({"image": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(), "label": 7})

        def post(_):
            url = f"http://127.0.0.1:{port}/api/feedback"
            request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
            try:
                return urllib.request.urlopen(request, timeout=10).status
            except (urllib.error.URLError, OSError):
                return None  # the server died under it

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(post, i) for i in range(2000)]
            stored = 0
            for future in concurrent.futures.as_completed(futures):  # kill once 50 are stored: mid-burst
                stored += future.result() == 200
                if stored == 50:
                    os.killpg(server.pid, signal.SIGKILL)
                    break
            answered = [a for f in futures if (a := f.result()) == 200]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    assert 50 <= len(answered) < 2000  # killed mid-burst
    lines = (folder / "index.jsonl").read_text().splitlines()
    assert len(lines) >= len(answered)  # every answered correction was stored
    for line in lines:
        record = json.loads(line)  # whole, never cut or interleaved
        Image.open(folder / record["file"]).verify()  # and its PNG is whole
    assert len(read_feedback(folder).labels) == len(lines)


def test_an_error_is_one_line_and_verbose_shows_its_cause(tmp_path, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a protobuf at all")
    assert main(["import", str(bad), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("digitlab: error:") and "\n" not in err, err
    assert main(["--verbose", "import", str(bad), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "Traceback (most recent call last):" and err[-1].startswith("digitlab: error:")
    assert "The above exception was the direct cause of the following exception:" in err  # the cause is chained
