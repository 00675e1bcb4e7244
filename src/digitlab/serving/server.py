"""`digitlab serve`: uvicorn with N worker processes, each with its own model and micro-batcher."""

from __future__ import annotations

import dataclasses
import json
import os

from fastapi import FastAPI

from digitlab.data.preprocess import single_threaded_opencv
from digitlab.errors import ConfigError
from digitlab.serving.app import ServeConfig, create_app


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run uvicorn with `workers` processes, each with its own model and micro-batcher.

    The model runtime gets one thread per process (ONNX Runtime and LiteRT by their session options;
    TensorFlow by TF_NUM_INTRAOP_THREADS, set before it starts): the model is small, requests already run
    in parallel, and spinning pool threads would take CPU from preprocessing (measured with Keras: ~1 ms
    less CPU per request). Set TF_NUM_INTRAOP_THREADS yourself to override. The app is built here first,
    so a bad model fails before the port is bound and an export needed by the runtime is made once, not
    by every worker at the same time.

    Args:
      config: the server's settings.
      host: the address to bind (127.0.0.1: this machine only).
      port: the TCP port.
      workers: the number of processes, at least 1.

    Raises:
      ConfigError: fewer than one worker, or a bad setting.
      ModelError: the model cannot be loaded.
    """
    import uvicorn

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    single_threaded_opencv()  # OpenCV too (this process, and the workers through its environment variable)

    app = create_app(config)
    runtime = app.state.runtime
    print(
        f"serving {config.model} ({runtime} runtime) on http://{host}:{port}  (API docs: http://{host}:{port}/docs)",
        flush=True,
    )
    if workers == 1:  # this process serves the app it just built
        uvicorn.run(app, host=host, port=port, log_level="warning")
        return
    config = dataclasses.replace(config, runtime=runtime)  # the workers take what the parent chose
    os.environ["DIGITLAB_SERVE_CONFIG"] = json.dumps(config.__dict__, default=list)
    uvicorn.run(
        "digitlab.serving.server:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="warning"
    )


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker process (they cannot share one app object), from `DIGITLAB_SERVE_CONFIG`."""
    raw = json.loads(os.environ["DIGITLAB_SERVE_CONFIG"])
    raw["cors_origins"] = tuple(raw.get("cors_origins") or ())
    return create_app(ServeConfig(**raw))
