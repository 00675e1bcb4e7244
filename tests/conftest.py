"""Shared fixtures: the real MNIST data (fetched once per machine) and small real subsets of it."""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from digitlab.data.fetch import default_data_dir, fetch_mnist
from digitlab.data.mnist import load_mnist


@pytest.fixture(scope="session")
def mnist_dir():
    """The real, verified MNIST data directory (fetched through the normal source chain if missing)."""
    return fetch_mnist(default_data_dir()).data_dir


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    return load_mnist(mnist_dir)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, mnist_dir):
    """A real `cnn` trained for one epoch on the full training split (~98.5% test accuracy, ~40 s on 2 cores).

    Shared by the evaluation, inference and serving tests.
    """
    from digitlab.training.config import resolve_config
    from digitlab.training.train import train_and_evaluate

    out = tmp_path_factory.mktemp("trained") / "cnn"
    config = resolve_config("cnn", epochs=1, lr=3e-3, schedule="onecycle", out=str(out), deterministic=True)
    train_and_evaluate(config, log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, trained_run, mnist_dir):
    """One tiny real run of each kind (512 images, one epoch; transfer on `trained_run` as its base), plus the
    shared `cnn`. Shared by the export and explain tests."""
    from digitlab.training.config import resolve_config
    from digitlab.training.train import train_and_evaluate

    tiny = {"limit": 512, "validation_size": 500, "batch_size": 64, "patience": 0, "epochs": 1, "lr": 3e-3}
    tmp = tmp_path_factory.mktemp("tiny-runs")
    made = {"cnn": trained_run}
    for kind, extra in [
        ("mlp", {}),
        ("deep-cnn", {"bn_momentum": 0.5}),
        ("fast-cnn", {"bn_momentum": 0.5}),
        ("raw-mlp", {"loop": "custom"}),
        ("transfer", {"base": str(trained_run), "fine_tune_layers": 1, "fine_tune_epochs": 1}),
    ]:
        config = resolve_config(kind, out=str(tmp / kind), deterministic=True, **tiny, **extra)
        made[kind] = train_and_evaluate(config, log=lambda *_: None).run_dir
    return made


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
