"""`digitlab export --format web` without a browser: fetching ONNX Runtime Web (refusals in one line, checksums), and
the command's wiring. The page itself is tested in test_static_app.py."""

from __future__ import annotations

import os
import stat

import pytest

from digitlab.errors import FetchError
from digitlab.inference import web_export


def test_npm_missing_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(web_export.shutil, "which", lambda _: None)
    with pytest.raises(FetchError, match=r"npm is not on PATH") as e:
        web_export.onnxruntime_web(tmp_path, log=lambda _: None)
    assert "\n" not in str(e.value)


def test_unreachable_registry_is_one_clear_line(tmp_path, monkeypatch):
    fake = tmp_path / "npm"
    lines = [
        "echo 'npm error code ENOTFOUND' >&2",
        "echo 'npm error syscall getaddrinfo' >&2",
        "echo 'npm error FetchError: request to https://registry.npmjs.org/x failed' >&2",
        "echo 'npm error     at ClientRequest.<anonymous> (index.js:130:14)' >&2",
        "exit 1",
    ]
    fake.write_text("#!/bin/sh\n" + "\n".join(lines) + "\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(
        FetchError, match=r"npm pack failed \(ENOTFOUND: FetchError: request to https://registry.npmjs.org/x failed\)"
    ) as e:
        web_export.onnxruntime_web(tmp_path / "cache", log=lambda _: None)
    assert "\n" not in str(e.value)


def test_a_tarball_with_the_wrong_checksum_is_refused(tmp_path):
    (tmp_path / f"onnxruntime-web-{web_export.ORT_VERSION}.tgz").write_bytes(b"not the package")
    with pytest.raises(FetchError, match="checksum mismatch"):
        web_export.onnxruntime_web(tmp_path, log=lambda _: None)
    assert not (tmp_path / f"onnxruntime-web-{web_export.ORT_VERSION}").exists()  # nothing unpacked


def test_a_cached_file_that_changed_is_fetched_again(tmp_path, monkeypatch):
    """The cache is trusted only while every file matches the sha256 recorded when it was unpacked."""
    folder = tmp_path / f"onnxruntime-web-{web_export.ORT_VERSION}"
    folder.mkdir()
    for name in web_export.ORT_FILES:
        (folder / name).write_bytes(b"x")
    (folder / "files.json").write_text('{"ort.wasm.min.mjs": "0"}')
    monkeypatch.setattr(web_export.shutil, "which", lambda _: None)
    with pytest.raises(FetchError, match="npm is not on PATH"):  # not reused: it goes to fetch it again
        web_export.onnxruntime_web(tmp_path, log=lambda _: None)


def test_web_is_a_format_of_export_but_not_of_all():
    from digitlab.cli.parser import build_parser
    from digitlab.models.export import FORMATS

    args = build_parser().parse_args(["export", "runs/cnn", "--format", "web", "--out", "site"])
    assert args.format == "web" and str(args.out) == "site"
    assert "web" not in FORMATS  # `--format all` stays the three model formats
