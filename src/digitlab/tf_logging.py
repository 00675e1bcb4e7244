"""TensorFlow's start-up notices, kept out of digitlab's output unless asked for.

TensorFlow 2.21 writes its C++ notices (`oneDNN custom operations are on ...`, twice) through absl before
absl's logging is initialised, and `TF_CPP_MIN_LOG_LEVEL` no longer silences them. So the first import of
TensorFlow runs with the process's stderr (file descriptor 2) pointed at a temporary file: the notices go
there, and if the import fails, everything it wrote is replayed so nothing diagnostic is lost.
LiteRT's "Created TensorFlow Lite XNNPACK delegate" notice is caught the same way. `--verbose` or
`DIGITLAB_LOG=debug` leaves stderr alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator


def verbose_requested() -> bool:
    """Whether `--verbose` or `DIGITLAB_LOG=debug` asked for TensorFlow's own log lines."""
    return os.environ.get("DIGITLAB_LOG", "").lower() == "debug"


def import_tensorflow(verbose: bool | None = None) -> None:
    """Import TensorFlow (and so Keras' backend) once, its C++ start-up notices hidden unless `verbose`.

    Args:
        verbose: Leave stderr alone; None asks `verbose_requested()`.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # what TensorFlow still honours after start-up
    with native_stderr_captured(verbose):
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def native_stderr_captured(verbose: bool | None = None) -> Iterator[None]:
    """Run the block with file descriptor 2 pointed at a temporary file.

    C++ libraries write there directly, past `sys.stderr`; on an exception, what was written is replayed so
    nothing diagnostic is lost.

    Args:
        verbose: Capture nothing; None asks `verbose_requested()`.

    Yields:
        None, with the capture in place for the block.
    """
    if verbose is None:
        verbose = verbose_requested()
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.buffer.write(capture.read())
            sys.stderr.flush()
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def library_output_silenced(verbose: bool | None = None) -> Iterator[None]:
    """Run the block with the libraries' own warnings off.

    Python `warnings`, TensorFlow's and absl's Python log lines, and their C++ notices (`native_stderr_captured`).

    Loading someone else's model file makes Keras, TensorFlow and ONNX say how they would have liked it saved
    (a `UserWarning` about `input_shape`, six "WARNING:tensorflow" lines for a TF1 SavedModel); none of it
    tells the user anything digitlab's one line does not. `--verbose` shows them.

    Args:
        verbose: Silence nothing; None asks `verbose_requested()`.

    Yields:
        None, with the warnings off for the block.
    """
    if verbose is None:
        verbose = verbose_requested()
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl", "keras")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), native_stderr_captured(verbose):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
