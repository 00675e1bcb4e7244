"""`digitlab read IMAGE…|DIR --model RUN`: one line per image, the number read (`read.read_number`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from digitlab.atomic import atomic_write_bytes
from digitlab.errors import ImageError
from digitlab.inference.predict import images_and_model
from digitlab.inference.read import Reading, read_number


def run_read(
    inputs: list[str | Path],
    model_path: str | Path,
    as_json: bool = False,
    save_processed: str | Path | None = None,
    runtime: str = "auto",
    out=None,
) -> int:
    """`digitlab read`: one line per image (text, or JSON with `--json`).

    Args:
        inputs: Files and folders (see `predict.collect_paths`).
        model_path: A run directory or a model file.
        as_json: Print `Reading.to_json` per line instead of text.
        save_processed: A folder to save each digit's 28×28 into as PNG, or None.
        runtime: auto, keras, onnx or litert.
        out: Where the lines go (default: stdout).

    Returns:
        1 if any image failed, else 0.

    Raises:
        ConfigError: No images were found, or the runtime is unknown.
        ModelError: The model cannot be loaded.
        MissingDependency: The runtime asked for is not installed.
    """
    out = out or sys.stdout
    paths, predictor = images_and_model(inputs, model_path, runtime)
    failed = 0
    for n, path in enumerate(paths, 1):
        try:
            reading = read_number(path, predictor)
        except ImageError as e:
            failed += 1
            print(json.dumps({"path": str(path), "error": str(e)}) if as_json else f"{path}: error: {e}", file=out)
            continue
        print(json.dumps({"path": str(path), **reading.to_json()}) if as_json else _text(path, reading), file=out)
        if save_processed:
            for k, digit in enumerate(reading.digits, 1):
                name = f"{n:06d}-{Path(path).stem}-{k}.png"
                atomic_write_bytes(Path(save_processed) / name, digit.processed.to_png())
    print(f"{len(paths)} images read, {failed} failed; runtime {predictor.runtime.name}", file=sys.stderr)
    return 1 if failed else 0


def _text(path, reading: Reading) -> str:
    if reading.blank:
        return f"{path}: no digits ({reading.reason})"
    digits = ", ".join(f"{d.label} {d.confidence:.3f}" for d in reading.digits)
    return f"{path}: {reading.text}  (confidence {reading.confidence:.3f}; digits: {digits})"
