"""`digitlab predict`: images in, digits out, in order; a bad file never stops a batch.

Decoding and preprocessing run in parallel in worker processes, not threads: `to_mnist_28x28` is mostly
small NumPy/OpenCV/Pillow calls that hold the GIL, so threads (tf.data's, or a `tf.numpy_function` map)
ran no faster than one core. The workers' 28×28s come back in order and are batched for the model, run by
the chosen runtime (ONNX Runtime by default: no TensorFlow start-up), and the model's calibrated temperature
(from `digitlab evaluate`) scales the probabilities.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.atomic import atomic_write_bytes
from digitlab.data.preprocess import Processed, map_in_processes, to_mnist_28x28, usable_cpus
from digitlab.errors import ConfigError, ImageError
from digitlab.inference.predictor import Predictor
from digitlab.inference.verdict import Answer, answer_all, needs_reading

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
OK, BLANK, FAILED = 0, 1, 2


def collect_paths(inputs: list[str | Path]) -> list[Path]:
    """Files as given, and image files found recursively in folders (sorted, so output order is stable).

    Args:
        inputs: Files and folders; a folder contributes its files with an image suffix (`IMAGE_SUFFIXES`).

    Returns:
        The paths, files first as given; a missing or non-image file is kept (it gets its own error line).
    """
    paths: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            paths += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(item)  # a missing or non-image file gets its own error line
    return paths


@dataclass
class Prediction:
    """One file's answer: the `verdict.Answer`, or the error that kept it from being made."""

    path: str
    answer: Answer | None = None
    error: str | None = None
    pixels: np.ndarray | None = None

    @property
    def label(self) -> int | None:
        """The digit, for the "digit" verdict only."""
        return None if self.answer is None else self.answer.label

    @property
    def verdict(self) -> str | None:
        """digit, blank, several_digits or not_a_digit (None when the file could not be read)."""
        return None if self.answer is None else self.answer.verdict

    def to_json(self) -> dict[str, Any]:
        """One line of `predict --json`.

        Returns:
            path and `Answer.to_json`'s fields (label, verdict, reason, probabilities, top_k, blank); for a file
            that could not be read, those are null (blank false) and `error` says why.
        """
        if self.answer is None:
            empty = {"label": None, "verdict": None, "reason": "", "probabilities": None, "top_k": None}
            return {"path": self.path, **empty, "blank": False, "error": self.error}
        return {"path": self.path, **self.answer.to_json()}

    def to_text(self) -> str:
        """One readable line: `PATH: LABEL  (top-k: ...)`, or what was wrong or why there is no digit."""
        answer = self.answer
        if answer is None:
            return f"{self.path}: error: {self.error}"
        if answer.blank:
            return f"{self.path}: no digit ({answer.reason})"
        if answer.verdict != "digit":
            return f"{self.path}: {answer.reason}"
        top = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in answer.top_k)
        return f"{self.path}: {answer.label}  (top-{len(answer.top_k)}: {top})"


def _preprocess_file(path: str) -> tuple[np.ndarray, int, str, Processed | None]:
    """(pixels, status, message, processed) for one file; never raises, so one bad file cannot stop the stream.

    `processed` (with its details and, for a mark wider than a digit, its ink) is what `verdict.judge` needs.
    """
    try:
        p = to_mnist_28x28(path)
    except ImageError as e:
        return np.zeros((28, 28), np.float32), FAILED, str(e), None
    except Exception as e:  # a decoder bug on one odd file must not stop the batch
        return np.zeros((28, 28), np.float32), FAILED, f"{type(e).__name__}: {e}", None
    if not needs_reading(p):
        p.ink = None  # only several marks or a wide one are read again; the rest need not travel between processes
    return p.pixels, BLANK if p.blank else OK, p.reason, p


def images_and_model(inputs: list[str | Path], model_path: str | Path, runtime: str) -> tuple[list[Path], Predictor]:
    """What `predict` and `read` start from: the image files and the model.

    The model's one-off notices (an export made on demand, a refusal fitted on first use) go to stderr.

    Args:
        inputs: Files and folders (see `collect_paths`).
        model_path: A run directory or a model file (see `Predictor.load`).
        runtime: auto, keras, onnx or litert.

    Returns:
        (the image paths, the predictor).

    Raises:
        ConfigError: No images were found, or the runtime is unknown.
        ModelError: The model cannot be loaded.
        MissingDependency: The runtime asked for is not installed.
    """
    paths = collect_paths(inputs)
    if not paths:
        raise ConfigError("no images found in the given paths")
    return paths, Predictor.load(model_path, runtime, log=lambda line: print(line, file=sys.stderr))


def preprocess_stream(paths: list[str], workers: int) -> Iterable[tuple[np.ndarray, int, str]]:
    """`_preprocess_file` over `paths`, in order, on `workers` processes (in this process when 1 or few files).

    Workers are spawned, not forked (`data.preprocess.map_in_processes`): forking a process that already runs
    TensorFlow's threads can deadlock.
    """
    if workers <= 1 or len(paths) < 64:  # starting workers (~1 s) costs more than it saves on a few files
        yield from map(_preprocess_file, paths)
        return
    chunk = max(1, min(64, len(paths) // (workers * 8)))
    died = "a preprocessing worker process died (out of memory?); try --workers 1"
    yield from map_in_processes(_preprocess_file, paths, workers, died, chunksize=chunk)


def predict_files(
    paths: list[Path],
    predictor: Predictor,
    top_k: int = 3,
    batch_size: int = 256,
    progress: bool = True,
    workers: int | None = None,
) -> Iterator[Prediction]:
    """Yield one Prediction per path, in order; preprocessing runs on `workers` processes (default: all CPUs).

    The pool works ahead of the model (every file is submitted at once and results wait in order), so the
    model's batch and the workers' next images overlap without a separate pipeline.

    Args:
        paths: Image files; one that cannot be read gives a Prediction with `error` set, never an exception.
        predictor: The model and its runtime.
        top_k: How many of the most probable labels each Prediction lists, 1 to 10.
        batch_size: Images per model call (≥ 1).
        progress: Show a tqdm progress bar on stderr.
        workers: Preprocessing processes (≥ 1; default: the CPUs this process may use).

    Yields:
        One `Prediction` per path, in the order of `paths`.

    Raises:
        ConfigError: `top_k` or `workers` is out of range.
        DigitlabError: A preprocessing worker process died.
    """
    from tqdm import tqdm

    if not 1 <= top_k <= 10:
        raise ConfigError(f"--top-k must be between 1 and 10, got {top_k}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if not paths:
        return
    names = [str(p) for p in paths]
    stream = preprocess_stream(names, workers or usable_cpus())
    bar = tqdm(total=len(paths), unit="img", desc="predict", disable=None if progress else True, file=sys.stderr)
    for start in range(0, len(names), batch_size):
        rows = [next(stream) for _ in names[start : start + batch_size]]
        ok = [r[3] for r in rows if r[1] == OK]
        outputs = predictor.forward(np.stack([p.pixels for p in ok])) if ok else (None, None)
        answers = iter(answer_all(ok, *outputs, predictor, top_k))
        for i, (image, code, message, processed) in enumerate(rows):
            path = names[start + i]
            if code == FAILED:
                yield Prediction(path, error=message)
            else:
                yield Prediction(path, Answer.blank_of(processed) if code == BLANK else next(answers), pixels=image)
        bar.update(len(rows))
    bar.close()


def run_predict(
    inputs: list[str | Path],
    model_path: str | Path,
    top_k: int = 3,
    as_json: bool = False,
    save_processed: str | Path | None = None,
    out=None,
    workers: int | None = None,
    runtime: str = "auto",
) -> int:
    """`digitlab predict`: print one line per file (readable, or JSON with `as_json`) and a summary on stderr.

    Args:
        inputs: Files and folders (see `collect_paths`).
        model_path: A run directory or a model file.
        top_k: How many of the most probable labels each line lists, 1 to 10.
        as_json: Print one JSON object per line (`Prediction.to_json`) instead of text.
        save_processed: A folder to save each image's 28×28 (as the model saw it) into as PNG, or None.
        out: Where the lines go (default: stdout).
        workers: Preprocessing processes (default: all CPUs).
        runtime: auto, keras, onnx or litert.

    Returns:
        1 if any file failed, else 0.

    Raises:
        ConfigError: No images were found, the runtime is unknown, or `top_k` or `workers` is out of range.
        ModelError: The model cannot be loaded.
        MissingDependency: The runtime asked for is not installed.
    """
    out = out or sys.stdout
    paths, predictor = images_and_model(inputs, model_path, runtime)
    save_dir = Path(save_processed) if save_processed else None
    failed = 0
    start = time.perf_counter()
    for n, pred in enumerate(predict_files(paths, predictor, top_k, workers=workers), 1):
        failed += pred.error is not None
        print(json.dumps(pred.to_json()) if as_json else pred.to_text(), file=out, flush=False)
        if save_dir is not None and pred.pixels is not None:
            name = f"{n:06d}-{Path(pred.path).stem}.png"
            atomic_write_bytes(save_dir / name, Processed(pred.pixels, pred.verdict == "blank").to_png())
    out.flush()
    seconds = time.perf_counter() - start
    print(
        f"{len(paths)} images in {seconds:.2f} s ({len(paths) / seconds:.0f} images/s), {failed} failed"
        + f"; runtime {predictor.runtime.name}"
        + (f", temperature {predictor.temperature:.3f}" if predictor.temperature != 1.0 else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0
