"""User-facing failures: one type each, with a message that says what to do.

The CLI prints these on one line and exits with status 2; anything else is a bug and keeps its traceback. The
server answers each with its `http_status` (one exception handler, `serving.app`), so an error means the same
HTTP status wherever it is raised.
"""

import re


class DigitlabError(Exception):
    """Base class: a failure the user can fix.

    Attributes:
      http_status: the HTTP status the server answers with (400, a client error, unless a subclass says otherwise).
    """

    http_status = 400


class DataError(DigitlabError):
    """An MNIST file is missing, truncated, corrupt or not an IDX file."""


class FetchError(DigitlabError):
    """No source could provide verified MNIST files."""


class ConfigError(DigitlabError):
    """A setting is out of range or unknown."""


class ModelError(DigitlabError):
    """A model file or run directory is missing, corrupt or incompatible."""


class ImageError(DigitlabError):
    """An input image cannot be read or is unsafe to decode."""


class ImageTooLarge(ImageError):
    """An input image has more pixels than the decoded-pixel limit allows (a decompression bomb, or a huge photo)."""

    http_status = 413


class FeedbackError(DigitlabError):
    """A feedback folder is missing or malformed, or holds too few usable corrections to fine-tune on."""


class LaunchError(DigitlabError):
    """A worker of a local multi-worker cluster failed or the cluster timed out."""


def one_line(e: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, for a `DigitlabError` that wraps it (the cause stays chained).

    Libraries' messages span lines (TensorFlow's op traces, ONNX Runtime's node dumps); the CLI prints one line
    and `--verbose` shows the chained original in full.

    Args:
        e: The exception to describe.
        limit: The most characters kept (≥ 1); longer messages are cut.

    Returns:
        The message with every run of whitespace made one space, or the exception's type name when the message is
        empty. A longer message keeps its start and its last sentence, where libraries put the cause
        (ONNX Runtime's "... Missing: NAME", TensorFlow's "... has no attribute 'add_slot'"): "start … end".
    """
    text = " ".join(str(e).split()) or type(e).__name__
    if len(text) <= limit:
        return text
    sentences = re.split(r"(?<=[.;])\s+", text)
    last = sentences.pop()[-(limit // 2) :]
    while sentences and len(sentences[-1]) + len(last) < limit // 2:  # as many whole last sentences as fit
        last = f"{sentences.pop()} {last}"
    head = text[: max(limit - len(last) - 3, 0)].rstrip()
    return f"{head} … {last}"


class MissingDependency(DigitlabError):
    """An optional library is not installed; the message names the extra of `pip install` that adds it."""


# Which extra of `pip install 'digitlab[...]'` installs each optional module (pyproject.toml's
# [project.optional-dependencies]): the one place an "install X" message takes its advice from.
EXTRAS = {
    "onnxruntime": "serve",
    "onnx": "export",
    "tf2onnx": "export",
    "ai_edge_litert": "export",
    "fastapi": "serve",
    "uvicorn": "serve",
    "anywidget": "notebook",
}


def install_hint(module: str) -> str:
    """The `pip install` command that adds an optional module.

    Args:
        module: An importable module name whose top-level package is a key of `EXTRAS` (e.g. ``"onnxruntime"``).

    Returns:
        E.g. ``pip install 'digitlab[serve]'``.
    """
    return f"pip install 'digitlab[{EXTRAS[module.partition('.')[0]]}]'"


def require(module: str, purpose: str):
    """Import an optional module, or say in one line which extra installs it.

    Args:
        module: The module to import, its top-level package a key of `EXTRAS` (e.g. ``"onnx"``).
        purpose: What needs it, to start the message (e.g. ``"reading ONNX models"``).

    Returns:
        The imported module.

    Raises:
        MissingDependency: The module is not installed (chained to the ImportError).
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependency(f"{purpose} needs {module.partition('.')[0]} ({install_hint(module)})") from e
