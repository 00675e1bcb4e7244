"""The server's settings (`digitlab serve`'s flags), declared once, and their defaults.

Light on purpose (no web framework, no model code): the command line builds its flags from `ServeConfig` for
every command, so `digitlab fetch` imports this module too.
"""

from __future__ import annotations

from dataclasses import dataclass

from digitlab.settings import AT_LEAST_1, POSITIVE, setting

MAX_BODY_BYTES = 5 * 1024 * 1024  # 5 MiB: a canvas PNG is ~10 KB, a phone photo ~3 MB
# TF Serving's REST API (/v1/models/...) takes batches of images as JSON numbers: ~16 KB a digit as Python's json
# writes floats, so 300 digits are ~4.7 MB. 16 MiB holds about 1,000; parsed, a body this size is at most ~135 MB
# of Python floats (4-byte "0.0," values), which bounds one request's memory.
MAX_PREDICT_BODY_BYTES = 16 * 1024 * 1024
BODY_SECONDS = 15.0  # a whole request body must arrive within this (slow-body clients get 408)
SERVE_PIXELS = 16_000_000  # decoded-pixel limit per image for the server (a 16 MP photo)


@dataclass
class ServeConfig:
    """The server's settings; each field with help text is also `digitlab serve`'s flag of the same name.

    Attributes:
      model: a run directory or a .keras (or imported) model file.
      max_body_bytes: the largest request body, in bytes (413 beyond).
      max_predict_body_bytes: the largest body of a TF Serving REST request (a JSON batch of images), in bytes.
      body_timeout: a body still arriving this many seconds after its request is refused with 408.
      max_pixels: the decoded-pixel limit per image (413 beyond).
      feedback_dir: where corrections go (default: RUN/feedback, or ./feedback for a bare model file).
      cors_origins: origins allowed by CORS (none unless configured).
      max_batch: the most images in one model call.
      runtime: auto, keras, onnx or litert (see `digitlab.inference.runtimes`).
    """

    model: str
    max_body_bytes: int = setting(MAX_BODY_BYTES, "request size limit in bytes", check=AT_LEAST_1)
    max_predict_body_bytes: int = setting(
        MAX_PREDICT_BODY_BYTES,
        "size limit of a TF Serving REST request, a JSON batch of images, in bytes (16 MiB holds ~1,000 digits)",
        check=AT_LEAST_1,
    )
    body_timeout: float = setting(BODY_SECONDS, "seconds a request body may take to arrive (408 after)", check=POSITIVE)
    max_pixels: int = setting(SERVE_PIXELS, "decoded image size limit in pixels", check=AT_LEAST_1)
    feedback_dir: str | None = setting(None, "where corrections go", unset="RUN/feedback")
    cors_origins: tuple[str, ...] = ()
    max_batch: int = 64
    runtime: str = "auto"
