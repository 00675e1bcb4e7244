"""Atomic file writes: a temporary name in the same folder, then a rename.

A killed process never leaves a file that looks complete, and readers never see half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and a rename.

    Args:
      path: the file to write; its folder is created when missing.
      data: the whole content.

    Returns:
      The path written.

    Raises:
      OSError: the folder is not writable or the disk is full (the old file, if any, is left as it was).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` as UTF-8 to `path` atomically (see `atomic_write_bytes`); returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON (keys in their given order) to `path` atomically; returns the path."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save_model(model: Any, path: str | Path, check: Callable[[Path], None] | None = None) -> Path:
    """Save a Keras model to `path` (a `.keras` file) through a temporary file and a rename.

    Keras writes a `.keras` zip in several steps, so a kill mid-save would otherwise leave a truncated file that
    looks like a model. The temporary name keeps the `.keras` suffix, which `model.save` requires.

    Args:
      model: the Keras model (anything with `save(path)`).
      path: the final file.
      check: called with the temporary file before it replaces `path` (e.g. a reload check); may raise.

    Returns:
      The path written.

    Raises:
      OSError: the folder is not writable; any error of `check` (the old file, if any, is left as it was).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.part{path.suffix}")
    try:
        model.save(tmp)
        if check is not None:
            check(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Render a matplotlib figure to PNG and write it atomically.

    A `matplotlib.figure.Figure` renders through its own Agg canvas, whatever the process's backend; a figure
    made by pyplot (which keeps it in its registry) is also closed, so it is not kept alive.
    """
    import io
    import sys

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if (pyplot := sys.modules.get("matplotlib.pyplot")) is not None:
        pyplot.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
