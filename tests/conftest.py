"""Shared fixtures: the real MNIST data (fetched once per machine), small real subsets of it, trained models,
and the marks that choose the fast tier.

`make test-fast` runs `-m "not slow and not browser"`: every test that trains nothing bigger than `tiny_cnn`
(a few seconds, once per session) and drives no browser. The marks are given here, from what a test uses, so a
new test that asks for `trained_run` is in the slow tier without anyone remembering to mark it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import pytest

from digitlab.data.fetch import default_data_dir, fetch_mnist
from digitlab.data.mnist import load_mnist

# Fixtures that train a real model (or several) for a minute or more on 2 cores: a test that uses one is `slow`.
TRAINING_FIXTURES = {"trained_run", "good_cnn", "tiny_runs"}  # this file
TRAINING_FIXTURES |= {"tutorial", "imported"}  # tests/importing: the tutorial models on 20,000 images
TRAINING_FIXTURES |= {"trained_runs", "members", "base_run", "transfer_run", "application_models"}  # tests/training
# A test that trains inline or starts TensorFlow in subprocesses carries @pytest.mark.slow itself.
BROWSER_FILES = {"test_browser.py", "test_widget_browser.py"}


def pytest_collection_modifyitems(config, items):
    """Mark `slow` the tests that use a training fixture (the others mark themselves) and `browser` Chromium's."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if item.path.name in BROWSER_FILES:
            item.add_marker(pytest.mark.browser)


# The optional libraries of the extras (pyproject.toml): `pip install digitlab` has none of them.
EXTRAS_ONLY = ("fastapi", "starlette", "uvicorn", "multipart", "onnxruntime", "onnx", "tf2onnx", "ai_edge_litert")
EXTRAS_ONLY += ("anywidget",)
_BLOCK_EXTRAS = f"""
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {EXTRAS_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not in the core install)", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.fixture(scope="session")
def without_extras() -> str:
    """Python source to run first in a fresh interpreter (`python -c`): every extra's library then fails to import
    as if not installed, as after a plain `pip install digitlab`."""
    return _BLOCK_EXTRAS


@pytest.fixture(scope="session")
def mnist_dir():
    """The real, verified MNIST data directory (fetched through the normal source chain if missing)."""
    return fetch_mnist(default_data_dir()).data_dir


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    return load_mnist(mnist_dir)


def _built_once(tmp_path_factory, name: str, build) -> Path:
    """`build(folder)` once per test session however many pytest-xdist workers ask; each worker gets a copy.

    pytest-xdist's documented pattern for session fixtures (a lock file in the folder the workers share): a model
    trains once per `make test`, not once per worker, and the copy keeps each worker's writes into a run
    (calibration, the refusal score, feedback) its own. Without xdist, `build` runs in a fresh folder.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        out = tmp_path_factory.mktemp(name)
        build(out)
        return out
    shared = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
    with open(f"{shared}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (shared / ".complete").exists():
            shutil.rmtree(shared, ignore_errors=True)
            shared.mkdir()
            build(shared)
            (shared / ".complete").touch()
    out = tmp_path_factory.mktemp(name)
    shutil.copytree(shared, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
    return out


def _train(out: Path, kind: str = "cnn", **settings) -> Path:
    from digitlab.training.config import resolve_config
    from digitlab.training.train import train_and_evaluate

    config = resolve_config(kind, out=str(out), deterministic=True, **settings)
    return train_and_evaluate(config, log=lambda *_: None).run_dir


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, mnist_dir):
    """A real `cnn` trained for one epoch on the full training split (~98.5% test accuracy, ~40 s on 2 cores).

    Shared by the evaluation, inference and serving tests.
    """
    settings = {"epochs": 1, "lr": 3e-3, "schedule": "onecycle"}
    return _built_once(tmp_path_factory, "trained", lambda out: _train(out / "cnn", **settings)) / "cnn"


@pytest.fixture(scope="session")
def tiny_cnn(tmp_path_factory, mnist_dir):
    """A real `cnn` trained for one epoch on 1,024 images (a few seconds): for the fast tier's tests that need
    *a* trained run directory, not a good model (it gets roughly 80% of test digits right, not 98.5%)."""
    settings = {"limit": 1024, "validation_size": 500, "batch_size": 64, "patience": 0, "epochs": 1, "lr": 3e-3}
    return _built_once(tmp_path_factory, "tiny-cnn", lambda out: _train(out / "cnn", **settings)) / "cnn"


TINY_KINDS = {
    "mlp": {},
    "deep-cnn": {"bn_momentum": 0.5},
    "fast-cnn": {"bn_momentum": 0.5},
    "raw-mlp": {"loop": "custom"},
    "transfer": {"fine_tune_layers": 1, "fine_tune_epochs": 1},  # on `trained_run` as its base
}


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, trained_run, mnist_dir):
    """One tiny real run of each kind (512 images, one epoch; transfer on `trained_run` as its base), plus the
    shared `cnn`. Shared by the export and explain tests."""
    tiny = {"limit": 512, "validation_size": 500, "batch_size": 64, "patience": 0, "epochs": 1, "lr": 3e-3}

    def build(out: Path) -> None:
        for kind, extra in TINY_KINDS.items():
            base = {"base": str(trained_run)} if kind == "transfer" else {}
            _train(out / kind, kind, **tiny, **extra, **base)

    folder = _built_once(tmp_path_factory, "tiny-runs", build)
    return {"cnn": trained_run} | {kind: folder / kind for kind in TINY_KINDS}


@contextlib.contextmanager
def _serving(app, startup_seconds: float = 30.0):
    """Run an ASGI app with uvicorn on a free loopback port in a thread; yields the port, stops it after."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_seconds
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def loopback_server():
    """`with loopback_server(app) as port:` a real server for tests that need real sockets (bounded start-up)."""
    return _serving


@pytest.fixture(scope="session")
def good_cnn(trained_run):
    return trained_run


def _png_header_only(width: int, height: int, depth: int, colour: int) -> bytes:
    """A PNG whose header declares width×height pixels (and holds almost none)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _bmp_header_only(width: int, height: int) -> bytes:
    import struct

    return (
        b"BM"
        + struct.pack("<IHHI", 0, 0, 0, 54)
        + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0)
    )


@pytest.fixture(scope="session")
def header_bombs() -> dict[str, bytes]:
    """Tiny files whose headers declare far more pixels than any limit (Pillow's own included)."""
    return {
        "1-bit PNG 30000×30000": _png_header_only(30000, 30000, 1, 0),
        "16-bit PNG 20000×20000": _png_header_only(20000, 20000, 16, 0),
        "BMP 100000×100000": _bmp_header_only(100000, 100000),
    }
