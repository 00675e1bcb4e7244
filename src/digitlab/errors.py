"""User-facing failures: one type each, with a message that says what to do.

The CLI prints these on one line and exits with status 2; anything else is a bug and keeps its traceback. The
server answers each with its `http_status` (one exception handler, `serving.app`), so an error means the same
HTTP status wherever it is raised.
"""


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
