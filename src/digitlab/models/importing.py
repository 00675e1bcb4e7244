"""`digitlab import MODEL`: any MNIST classifier → a run directory the other commands take like a trained run.

Detection shows its evidence. The layout comes from the input shape. The output kind comes from the last activation
and from the outputs on real digits (`contract.output_kind`). The input scale and polarity are chosen by scoring
every candidate (unit [0, 1], byte [0, 255], symmetric [−1, 1], standardized with MNIST's mean and std, each plain
and inverted) on 1,000 labelled MNIST *training* digits and keeping the one with the lowest negative log-likelihood.
Accuracy alone cannot decide: a dense net trained on [0, 1] and fed [0, 255] still ranks the right class first about
as often (93.4% vs 93.2% in the tests' `dense_784`), but its confidence is wildly wrong (NLL 31.9 vs 0.23). Two
candidates that score alike there are scored again on the 5,000 validation digits (split seed 0; the test set is
never read); if they still cannot be told apart but give the same answer on at least 99.5% of those digits (a net
that normalises each image itself answers [0, 1] and [0, 255] alike), the first in `SCALES` order is kept and the
tie is recorded. Detection refuses, naming the flags to pass, when the chosen candidate is under 90% accurate
(probably not an MNIST model) or when two candidates that disagree cannot be told apart.

Import then checks what it wrote: the run is loaded as every other command will load it (the adapted ONNX graph by
ONNX Runtime, the Keras adapter by Keras, the SavedModel's signature by TensorFlow) and must answer the detection
digits as detection saw them, before import says "imported".

The run directory:

```
RUN/
  contract.json   the detected (or given) contract: digitlab's side, the model's side, the evidence
  model.keras     Keras imports: the adapter around the user's network (loads in Keras' safe mode)
  source.onnx     ONNX imports: the original graph, its weights inline (the adapter is applied on load)
  savedmodel/     SavedModel imports: the original folder (likewise)
  config.json     the source file, its sha256 and format, the contract, the evidence
  metrics.json    the detection's scores (no test accuracy: `digitlab evaluate RUN` measures that)
  summary.txt     the same in words
```

An imported model is uncalibrated (temperature 1): it may have trained on any of the 60,000 training images, so no
split of them is trusted to fit a temperature on.
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

from digitlab.atomic import atomic_write_bytes, atomic_write_json
from digitlab.data.fetch import default_data_dir
from digitlab.data.images import to_input_batch
from digitlab.errors import ConfigError, ModelError, one_line
from digitlab.models.contract import LAYOUTS, OUTPUTS, SCALES, Contract, output_kind, to_logits, to_model_input
from digitlab.models.foreign import ForeignModel, open_foreign
from digitlab.tf_logging import library_output_silenced

DETECTION_DIGITS = 1000
MIN_ACCURACY = 0.90  # below this on training digits, no candidate is a plausible MNIST model
TIE_NLL = 0.05  # candidates within 5% NLL of each other …
TIE_ACCURACY = 0.005  # … and within half a point of accuracy cannot be told apart
TIE_DIGITS = 5000  # the validation split (split seed 0) that scores tied candidates again
SAME_ANSWERS = 0.995  # tied candidates giving the same answer on this share of those digits are equivalent
VERIFY_TOLERANCE = 0.003  # the written run's accuracy on the detection digits may differ by 3 digits in 1,000
CONTRACT_FILE = "contract.json"
CACHE_FOLDER = "imports"


@dataclass
class ImportOptions:
    """What the user says about the model; None means "detect it".

    Attributes:
      layout: 28x28x1 | 28x28 | 784 | 1x28x28 (must match the model's input shape).
      scale: unit | byte | standard | symmetric.
      outputs: logits | probabilities | log-probabilities.
      invert: True: the model wants black ink on white; False: white on black.
      trust_code: allow Python code (Lambda layers) in a Keras file.
      signature: the SavedModel signature to call (default: serving_default if it classifies digits, else the
        only signature that does).
    """

    layout: str | None = None
    scale: str | None = None
    outputs: str | None = None
    invert: bool | None = None
    trust_code: bool = False
    signature: str | None = None

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


def detect(
    foreign: ForeignModel, x: np.ndarray, y: np.ndarray, options: ImportOptions, data_dir: str | Path | None = None
) -> Contract:
    """The contract of `foreign`, with the evidence for each decision in `contract.evidence`.

    Args:
        foreign: The opened model.
        x: (N, 28, 28, 1) float32 detection digits in [0, 1]; y their (N,) labels.
        y: The labels of x.
        options: What the user said (None fields are detected).
        data_dir: Where MNIST lives (a tie is scored again on its validation digits).

    Returns:
        The contract, its evidence filled in.

    Raises:
        ModelError: the model fails on digits, answers the wrong shape, or its convention is implausible or unclear.
        ConfigError: a flag contradicts the model.
    """
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
    scored.sort(key=lambda s: (s["nll"], -s["accuracy"]))  # stable: a tie keeps SCALES order
    tie = _break_tie(foreign, scored, kind, base, data_dir)
    best = scored[0]
    chosen = Contract(**base, scale=best["scale"], invert=best["invert"], outputs=kind)
    chosen.evidence = {
        "layout": f"input shape {foreign.input_shape} (batch {foreign.batch or 'any'})",
        "outputs": kind_why,
        "scale_and_polarity": f"best of {len(scored)} candidates on {len(y)} MNIST training digits" + tie,
        "candidates": scored,
        "accuracy": best["accuracy"],
        "digits": len(y),
        "notes": foreign.notes,
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


FLAGS = "--input-scale unit|byte|standard|symmetric and --invert/--no-invert (and --input-layout, --outputs)"


def _break_tie(
    foreign: ForeignModel, scored: list[dict[str, Any]], kind: str, base: dict[str, Any], data_dir: str | Path | None
) -> str:
    """Refuse an implausible or unclear best candidate, or settle a tie between the best two.

    Args:
        foreign: The opened model.
        scored: The candidates' scores, best first (reordered when the validation digits tell a tie apart).
        kind: What the model answers (logits, probabilities, log-probabilities).
        base: The contract fields detection fixed (layout, dtype, names, ...).
        data_dir: Where MNIST lives.

    Returns:
        Words for the evidence ("" when there was no tie).

    Raises:
        ModelError: the best candidate is under MIN_ACCURACY, or two candidates that give different answers score
            alike on the detection digits and on the validation digits.
    """
    best = scored[0]
    if len(scored) == 1:  # the user said how it was trained: nothing was detected, so nothing to doubt
        return ""
    if best["accuracy"] < MIN_ACCURACY:
        raise ModelError(
            f"the most likely input convention ({_words(best)}) gets {best['accuracy']:.1%} on "
            f"{DETECTION_DIGITS:,} MNIST training digits, under {MIN_ACCURACY:.0%}: probably not an MNIST model; "
            f"if it is, say how it was trained with {FLAGS}"
        )
    if not _alike(best, scored[1]):
        return ""
    x, y = validation_digits(data_dir)
    pair = [Contract(**base, scale=c["scale"], invert=c["invert"]) for c in scored[:2]]
    outs = [_run(foreign, to_model_input(x, contract)) for contract in pair]
    again = [_score(contract, out, y, kind) for contract, out in zip(pair, outs, strict=True)]
    if not _alike(*again):
        if again[1]["nll"] < again[0]["nll"]:
            scored[0], scored[1] = scored[1], scored[0]
        return f"; tied there, told apart on {len(y):,} validation digits (NLL {again[0]['nll']} vs {again[1]['nll']})"
    same = float(np.mean(outs[0].argmax(1) == outs[1].argmax(1)))
    if same < SAME_ANSWERS:
        raise ModelError(
            f"cannot tell the input convention: {_words(best)} and {_words(scored[1])} score alike "
            f"({best['accuracy']:.1%} vs {scored[1]['accuracy']:.1%}) but answer differently on {1 - same:.1%} of "
            f"digits; pass {FLAGS}"
        )
    return (
        f"; {_words(best)} and {_words(scored[1])} tie, and give the same answer on {same:.1%} of {len(y):,} "
        f"validation digits, so the first was kept"
    )


def _alike(a: dict[str, Any], b: dict[str, Any]) -> bool:
    close_nll = abs(b["nll"] - a["nll"]) <= TIE_NLL * max(a["nll"], 1e-3)
    return abs(a["accuracy"] - b["accuracy"]) < TIE_ACCURACY and close_nll


def validation_digits(data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 validation digits of split seed 0 as (N, 28, 28, 1) float32 in [0, 1], and labels."""
    from digitlab.data.mnist import load_splits

    splits = load_splits(data_dir, validation_size=TIE_DIGITS, seed=0)
    return to_input_batch(splits.x_val), splits.y_val.astype(np.int64)


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
    foreign = open_foreign(source, options.trust_code, options.signature)
    out = Path(out) if out else Path("runs") / f"{_stem(source)}-import"
    if _same_import(out, source, options):
        log(f"{out} already holds this import of {source.name} (same file, same options): reusing it")
        return out
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} already holds files; choose a new folder")
    x, y = detection_digits(data_dir)
    contract = detect(foreign, x, y, options, data_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=_parent(out)))
    try:
        _write_run(staging, source, foreign, contract, time.perf_counter() - start, options)
        verify_run(staging, contract, x, y, source.name)
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


def verify_run(run: Path, contract: Contract, x: np.ndarray, y: np.ndarray, name: str) -> None:
    """Load the written run as every command will and check it answers the detection digits as detection saw.

    Args:
        run: The written (staging) run directory.
        contract: The detected contract, with its evidence.
        x: (N, 28, 28, 1) float32 in [0, 1], the detection digits; y their labels.
        y: The labels of x.
        name: The source file's name, for the message.

    Raises:
        ModelError: the run does not load, fails on digits, or answers them differently (a bug in an adapter
            for this kind of file: the message says so, and nothing is written).
    """
    from digitlab.models.forward import predict_logits
    from digitlab.models.imported import load_network

    try:
        with library_output_silenced():
            logits = predict_logits(load_network(run / contract.file, contract, run.name), x)
    except ModelError as e:
        raise ModelError(f"{name}: the imported run does not load ({e}); nothing was written") from e
    except Exception as e:  # the adapted model's own runtime failed on digits it accepted at detection
        raise ModelError(f"{name}: the imported run fails on digits ({one_line(e)}); nothing was written") from e
    accuracy = float(np.mean(np.asarray(logits).argmax(1) == y))
    if abs(accuracy - contract.evidence["accuracy"]) > VERIFY_TOLERANCE:
        raise ModelError(
            f"{name}: the imported run answers {accuracy:.1%} of {len(y):,} digits right where the model itself "
            f"answered {contract.evidence['accuracy']:.1%}; nothing was written (please report this file)"
        )


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
    said = {**asdict(ImportOptions()), **record.get("options", {})}  # options added later take their defaults
    return said == asdict(options) and recorded.get("sha256") == digest(source)


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
        contract.file = "source.onnx"  # one self-contained file: weights kept in side files are read in
        atomic_write_bytes(run / contract.file, foreign.network.SerializeToString())
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
        *([f"  signature: {contract.signature}"] if contract.signature else []),
        f"  outputs: {contract.evidence['outputs']}",
        f"  scale and polarity: {_words(best)}, {best['accuracy']:.1%} on {contract.evidence['digits']:,} MNIST "
        f"training digits (NLL {best['nll']:.3f}){_tie_words(contract)}; the other candidates:",
        *[f"    {_words(c):<40} {c['accuracy']:.1%}  NLL {c['nll']:.3f}" for c in contract.evidence["candidates"][1:]],
        *[f"  note: {note}" for note in contract.evidence.get("notes", [])],
        "  uncalibrated (temperature 1): the model may have trained on any MNIST training image",
        f"  trusted code: {'yes (--trust-code)' if contract.trust_code else 'no (safe mode)'}",
        "  test accuracy: run `digitlab evaluate` on this run",
    ]
    return f"{name}: imported from {source.name} ({contract.format})", details


def _tie_words(contract: Contract) -> str:
    how = contract.evidence.get("scale_and_polarity", "")
    return how[how.index(";") :] if ";" in how else ""


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
