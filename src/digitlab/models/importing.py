"""`digitlab import MODEL`: any MNIST classifier → a run directory the other commands take like a trained run.

Detection shows its evidence. The layout comes from the input shape. The output kind comes from the last
activation and from the outputs on real digits (`contract.output_kind`). The input scale and polarity are
chosen by scoring every candidate (unit [0, 1], byte [0, 255], standardized with MNIST's mean and std, each
plain and inverted) on 1,000 labelled MNIST *training* digits and keeping the one with the lowest negative
log-likelihood. Accuracy alone cannot decide: a dense net trained on [0, 1] and fed [0, 255] still ranks the
right class first about as often (93.4% vs 93.2% in the tests' `dense_784`), but its confidence is wildly
wrong (NLL 31.9 vs 0.23). Detection refuses, naming the flags to pass, when the chosen candidate is under
90% accurate (probably not an MNIST model) or when two candidates cannot be told apart.

The run directory:

```
RUN/
  contract.json   the detected (or given) contract: digitlab's side, the model's side, the evidence
  model.keras     Keras imports: the adapter around the user's network (loads in Keras' safe mode)
  source.onnx     ONNX imports: the original file (the adapter is applied when it is loaded)
  savedmodel/     SavedModel imports: the original folder (likewise)
  config.json     the source file, its sha256 and format, the contract, the evidence
  metrics.json    the detection's scores (no test accuracy: `digitlab evaluate RUN` measures that)
  summary.txt     the same in words
```

An imported model is uncalibrated (temperature 1): it may have trained on any of the 60,000 training images,
so no split of them is trusted to fit a temperature on.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.atomic import atomic_write_json
from digitlab.data.fetch import default_data_dir
from digitlab.data.images import to_input_batch
from digitlab.errors import ConfigError, ModelError, one_line
from digitlab.models.contract import LAYOUTS, OUTPUTS, SCALES, Contract, output_kind, to_logits, to_model_input
from digitlab.models.foreign import ForeignModel, open_foreign

DETECTION_DIGITS = 1000
MIN_ACCURACY = 0.90  # below this on training digits, no candidate is a plausible MNIST model
TIE_NLL = 0.05  # candidates within 5% NLL of each other …
TIE_ACCURACY = 0.005  # … and within half a point of accuracy cannot be told apart
CONTRACT_FILE = "contract.json"
CACHE_FOLDER = "imports"


@dataclass
class ImportOptions:
    """What the user says about the model; None means "detect it".

    Attributes:
      layout: 28x28x1 | 28x28 | 784 | 1x28x28 (must match the model's input shape).
      scale: unit | byte | standard.
      outputs: logits | probabilities | log-probabilities.
      invert: True: the model wants black ink on white; False: white on black.
      trust_code: allow Python code (Lambda layers) in a Keras file.
    """

    layout: str | None = None
    scale: str | None = None
    outputs: str | None = None
    invert: bool | None = None
    trust_code: bool = False

    def validate(self) -> None:
        """Check the given options.

        Raises:
          ConfigError: a layout, scale or outputs value that is not one of the allowed.
        """
        for flag, value, allowed in (
            ("--input-layout", self.layout, tuple(LAYOUTS)),
            ("--input-scale", self.scale, SCALES),
            ("--outputs", self.outputs, OUTPUTS),
        ):
            if value is not None and value not in allowed:
                raise ConfigError(f"{flag} must be one of {', '.join(allowed)}, got {value!r}")


def detection_digits(data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """1,000 MNIST training digits (a fixed seeded sample) as (1000, 28, 28, 1) float32 in [0, 1], and labels."""
    from digitlab.data.mnist import load_mnist

    data = load_mnist(data_dir)
    index = np.sort(np.random.default_rng(0).choice(len(data.x_train), DETECTION_DIGITS, replace=False))
    return to_input_batch(data.x_train[index]), data.y_train[index].astype(np.int64)


def detect(foreign: ForeignModel, x: np.ndarray, y: np.ndarray, options: ImportOptions) -> Contract:
    """The contract of `foreign`, with the evidence for each decision in `contract.evidence`."""
    layout = foreign.layout
    if options.layout and options.layout != layout:
        raise ConfigError(f"--input-layout {options.layout} does not match the model's input shape ({layout})")
    base = {
        "format": foreign.format,
        "file": "",
        "layout": layout,
        "dtype": foreign.dtype,
        "batch": foreign.batch,
        "input_name": foreign.input_name,
        "output_name": foreign.output_name,
        "signature": foreign.signature,
        "trust_code": options.trust_code,
    }
    scales = [options.scale] if options.scale else list(SCALES)
    inverts = [options.invert] if options.invert is not None else [False, True]
    scored, kind, kind_why = [], None, ""
    for scale in scales:
        for invert in inverts:
            contract = Contract(**base, scale=scale, invert=invert)
            out = _run(foreign, to_model_input(x, contract))
            if kind is None:
                kind, kind_why = _output_kind(out, foreign.last_activation, options.outputs)
            scored.append(_score(contract, out, y, kind))
    scored.sort(key=lambda s: (s["nll"], -s["accuracy"]))
    best = scored[0]
    _refuse_if_unsure(scored, options)
    chosen = Contract(**base, scale=best["scale"], invert=best["invert"], outputs=kind)
    chosen.evidence = {
        "layout": f"input shape {foreign.input_shape} (batch {foreign.batch or 'any'})",
        "outputs": kind_why,
        "scale_and_polarity": f"best of {len(scored)} candidates on {len(y)} MNIST training digits",
        "candidates": scored,
        "accuracy": best["accuracy"],
        "digits": len(y),
    }
    return chosen


def _run(foreign: ForeignModel, x: np.ndarray) -> np.ndarray:
    try:
        out = np.asarray(foreign.run(x))
    except ModelError:
        raise
    except Exception as e:  # the model's own runtime failed on a correctly shaped batch
        raise ModelError(f"{foreign.path.name} failed on a batch of digits: {one_line(e)}") from e
    if out.shape != (len(x), 10):
        raise ModelError(f"{foreign.path.name} answered shape {out.shape} for {len(x)} digits, not ({len(x)}, 10)")
    return out


def _output_kind(out: np.ndarray, last_activation: str | None, given: str | None) -> tuple[str, str]:
    seen = output_kind(out)
    if given:
        return given, f"given (--outputs {given}); the outputs on digits look like {seen}"
    named = {"softmax": "probabilities", "log_softmax": "log-probabilities"}.get(last_activation or "")
    if named and named != seen:
        raise ModelError(
            f"the last layer is {last_activation} but the outputs on digits look like {seen}; pass --outputs"
        )
    rows = "rows non-negative, summing to 1" if seen == "probabilities" else "exp of rows sums to 1"
    why = {"logits": "rows neither probabilities nor log-probabilities on real digits"}.get(seen, rows)
    return seen, f"{last_activation} layer, and {why}" if named else why


def _score(contract: Contract, out: np.ndarray, y: np.ndarray, kind: str) -> dict[str, Any]:
    from digitlab.models.calibration import negative_log_likelihood

    logits = np.nan_to_num(to_logits(out, kind).astype(np.float64), nan=0.0, posinf=1e30, neginf=-1e30)
    nll = negative_log_likelihood(logits, y)
    return {
        "scale": contract.scale,
        "invert": contract.invert,
        "accuracy": round(float(np.mean(logits.argmax(1) == y)), 4),
        "nll": round(float(nll), 4) if np.isfinite(nll) else float("inf"),
    }


def _refuse_if_unsure(scored: list[dict[str, Any]], options: ImportOptions) -> None:
    best = scored[0]
    flags = "--input-scale unit|byte|standard and --invert/--no-invert (and --input-layout, --outputs)"
    if len(scored) == 1:  # the user said how it was trained: nothing was detected, so nothing to doubt
        return
    if best["accuracy"] < MIN_ACCURACY:
        raise ModelError(
            f"the most likely input convention ({_words(best)}) gets {best['accuracy']:.1%} on "
            f"{DETECTION_DIGITS:,} MNIST training digits, under {MIN_ACCURACY:.0%}: probably not an MNIST model; "
            f"if it is, say how it was trained with {flags}"
        )
    if len(scored) > 1:
        second = scored[1]
        close_nll = abs(second["nll"] - best["nll"]) <= TIE_NLL * max(best["nll"], 1e-3)
        if abs(best["accuracy"] - second["accuracy"]) < TIE_ACCURACY and close_nll:
            raise ModelError(
                f"cannot tell the input convention: {_words(best)} and {_words(second)} score alike "
                f"({best['accuracy']:.1%} vs {second['accuracy']:.1%}); pass {flags}"
            )


def _words(candidate: dict[str, Any]) -> str:
    return f"scale {candidate['scale']}, {'black on white' if candidate['invert'] else 'white on black'}"


def import_model(
    source: str | Path,
    out: str | Path | None = None,
    options: ImportOptions | None = None,
    data_dir: str | Path | None = None,
    log: Callable[[str], Any] = print,
) -> Path:
    """Import `source` (a .keras/.h5/.onnx file or a SavedModel folder) into the run directory `out`.

    Args:
      source: the model file or folder.
      out: the run directory to write (default runs/<name>-import); must not hold another run.
      options: what the user says about the contract (None: detect everything).
      data_dir: where MNIST lives (the detection digits come from its training split).
      log: where the one-line decision is printed.

    Returns:
      The run directory.

    Raises:
      ModelError: the file cannot be read, is not a 10-class digit model, or its contract is unclear.
      ConfigError: a flag is out of range or `out` is not a fresh folder.
    """
    options = options or ImportOptions()
    options.validate()
    source = Path(source)
    start = time.perf_counter()
    foreign = open_foreign(source, options.trust_code)
    out = Path(out) if out else Path("runs") / f"{_stem(source)}-import"
    if _same_import(out, source, options):
        log(f"{out} already holds this import of {source.name} (same file, same options): reusing it")
        return out
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} already holds files; choose a new folder")
    x, y = detection_digits(data_dir)
    contract = detect(foreign, x, y, options)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=_parent(out)))
    try:
        _write_run(staging, source, foreign, contract, time.perf_counter() - start, options)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(
        f"imported {source.name}: {contract.describe()} ({contract.evidence['outputs']}); "
        f"{contract.evidence['accuracy']:.1%} on {len(y):,} training digits → {out}"
    )
    return out


def _same_import(out: Path, source: Path, options: ImportOptions) -> bool:
    """Whether `out` is a finished import of the same file (by sha256) with the same options.

    Importing again would only reproduce it (a tutorial run twice, the same command repeated).
    """
    from digitlab.models.export import digest
    from digitlab.rundir import RunDir

    run = RunDir(out)
    if not run.finished:
        return False
    try:
        record = run.read_config()
    except ModelError:
        return False  # a corrupt run is not reused; the "already holds files" refusal follows
    recorded = record.get("source", {})
    return record.get("options") == asdict(options) and recorded.get("sha256") == digest(source)


def _parent(out: Path) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out} is not writable ({e.strerror or e})") from e
    return out.parent


def _stem(source: Path) -> str:
    return source.name if source.is_dir() else source.stem


def _write_run(
    run: Path, source: Path, foreign: ForeignModel, contract: Contract, seconds: float, options: ImportOptions
) -> None:
    """Write the imported run into `run` (a staging folder, renamed into place by the caller) through RunDir."""
    from digitlab.models.contract import keras_adapter
    from digitlab.models.export import digest
    from digitlab.rundir import RunDir

    name, folder = _stem(source), RunDir(run)
    adapter = None
    if foreign.format == "keras":
        contract.file = "model.keras"
        adapter = keras_adapter(foreign.network, contract, name)  # saved by `finish`, atomically
    elif foreign.format == "onnx":
        contract.file = "source.onnx"
        shutil.copyfile(source, run / contract.file)
    else:
        contract.file = "savedmodel"
        shutil.copytree(source, run / contract.file)
    atomic_write_json(run / CONTRACT_FILE, contract.to_json())
    folder.write_config(
        "import",
        {"model": name, "imported": True, "format": foreign.format},
        source={"file": str(source.resolve()), "sha256": digest(source), "format": foreign.format},
        contract=contract.to_json(),
        options=asdict(options),  # what the user said: the same file with the same options is the same import
    )
    metrics = {
        "schema": "digitlab.import-metrics/1",
        "detection": {"digits": contract.evidence["digits"], "accuracy": contract.evidence["accuracy"]},
        "import_seconds": round(seconds, 2),
        "test": None,
        "note": "an imported model's test accuracy is measured by `digitlab evaluate RUN`",
    }
    folder.finish(metrics, *_summary_lines(name, source, contract), model=adapter)


def _summary_lines(name: str, source: Path, contract: Contract) -> tuple[str, list[str]]:
    """The summary's headline and detail lines (see `digitlab.rundir.format_summary`)."""
    best = contract.evidence["candidates"][0]
    details = [
        f"  the model's side: {contract.describe()}",
        f"  outputs: {contract.evidence['outputs']}",
        f"  scale and polarity: {_words(best)}, {best['accuracy']:.1%} on {contract.evidence['digits']:,} MNIST "
        f"training digits (NLL {best['nll']:.3f}); the other candidates:",
        *[f"    {_words(c):<40} {c['accuracy']:.1%}  NLL {c['nll']:.3f}" for c in contract.evidence["candidates"][1:]],
        "  uncalibrated (temperature 1): the model may have trained on any MNIST training image",
        f"  trusted code: {'yes (--trust-code)' if contract.trust_code else 'no (safe mode)'}",
        "  test accuracy: run `digitlab evaluate` on this run",
    ]
    return f"{name}: imported from {source.name} ({contract.format})", details


def cache_root(data_dir: str | Path | None = None) -> Path:
    """Where model files without a run around them are imported on the fly: DATA_DIR/imports/<sha256>."""
    return Path(data_dir or default_data_dir()) / CACHE_FOLDER


def import_cached(source: Path, log: Callable[[str], Any] = print) -> Path:
    """The run directory of `source` in the import cache, importing it first if it is not there yet."""
    from digitlab.models.export import digest

    if not source.exists():
        raise ModelError(f"no model at {source}")
    run = cache_root() / digest(source)[:24]
    if (run / CONTRACT_FILE).is_file():
        return run
    log(f"{source} has no digitlab run around it: importing it into {run} (`digitlab import --clear-cache` empties it)")
    try:
        return import_model(source, run, log=log)
    except ConfigError as e:  # a concurrent import of the same file finished first
        if (run / CONTRACT_FILE).is_file():
            return run
        raise ModelError(str(e)) from e


def clear_cache() -> int:
    """Remove every cached import; returns how many there were."""
    root = cache_root()
    runs = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    for run in runs:
        shutil.rmtree(run, ignore_errors=True)
    return len(runs)


def read_contract(run: Path) -> Contract | None:
    """The run's contract, or None for a run digitlab trained; a corrupt one is a ModelError."""
    import json

    path = run / CONTRACT_FILE
    if not path.is_file():
        return None
    try:
        return Contract.from_json(json.loads(path.read_text()))
    except ValueError as e:
        raise ModelError(f"{path} is not valid JSON ({e})") from e
