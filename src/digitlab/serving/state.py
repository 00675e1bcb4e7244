"""What every route shares: the settings and the model behind its micro-batcher.

Built once by `create_app` and kept in `app.state`; routes get it through the `Served` dependency.

The model runs in a single background thread fed by a queue (`batching.py`): requests that arrive together
are predicted in one batch, so concurrent clients share model calls and the event loop never waits on
TensorFlow. Canvas-sized images are decoded and preprocessed on the event loop (cheaper than handing them to a
thread under the GIL), larger ones in a thread.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Request

from digitlab.data.decode import image_size
from digitlab.data.preprocess import Processed, to_mnist_28x28
from digitlab.inference.predictor import Predictor
from digitlab.models.calibration import probabilities
from digitlab.serving.batching import BatchPredictor
from digitlab.serving.config import ServeConfig

INLINE_PIXELS = 640 * 640  # images up to this size are preprocessed on the event loop (see ServedModel.preprocess)


@dataclass
class BatchedModel:
    """The model as the reader sees it (`read.read_number`), its logits through the micro-batching model thread.

    For code in a worker thread, which waits for its batch.

    Attributes:
      batcher: the model thread.
      temperature: the calibration temperature (1.0 when uncalibrated).
      refusal_score: the run's refusal score (`Predictor.refusal()`).
    """

    batcher: BatchPredictor
    temperature: float
    refusal_score: Any

    def forward(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and features of `pixels` (float32 (N, 28, 28) in [0, 1]); blocks until its batch ran."""
        return self.batcher.submit(np.asarray(pixels, np.float32)).result()

    def refusal(self) -> Any:
        """The refusal score, as `Predictor.refusal()` gives it."""
        return self.refusal_score


@dataclass
class ServedModel:
    """The model behind its batcher, with the server's preprocessing: what the routes call.

    Attributes:
      config: the server's settings.
      predictor: the loaded model and its runtime.
      batcher: the one thread that runs the model.
      feedback_dir: where corrections are stored.
    """

    config: ServeConfig
    predictor: Predictor
    batcher: BatchPredictor
    feedback_dir: Path
    # Preprocessing a canvas-sized image takes ~1-2 ms of small NumPy/OpenCV calls, each of which releases and
    # retakes the GIL: in a thread pool every one becomes a GIL handoff with the event loop (measured: ~25% more
    # CPU per request, much of it in the kernel). So the event loop preprocesses such images itself, and only
    # large ones (a phone photo: tens of ms) go to this thread, where they cannot stall the other requests.
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="digitlab-preprocess")
    )

    @classmethod
    def load(cls, config: ServeConfig) -> ServedModel:
        """Load the model, fit its refusal score and start its model thread: a bad model fails here.

        Args:
          config: the server's settings.

        Returns:
          The served model, ready for requests.

        Raises:
          ModelError: the model cannot be loaded.
          ConfigError: an unknown runtime.
        """
        predictor = Predictor.load(config.model, config.runtime)
        refusal = predictor.refusal()  # fitted now, on first use, rather than during someone's first request
        refusal.score(np.zeros((1, 28, 28), np.float32), np.zeros((1, 10), np.float32))  # builds the digit space
        run_dir = predictor.loaded.run_dir
        feedback = Path(config.feedback_dir or ((run_dir / "feedback") if run_dir else Path("feedback")))
        return cls(config, predictor, BatchPredictor(predictor, config.max_batch), feedback)

    @property
    def temperature(self) -> float:
        """The calibration temperature (1.0 when uncalibrated)."""
        return self.predictor.loaded.temperature

    @cached_property
    def reader(self) -> BatchedModel:
        """The model for `read_number` and `judge` in a worker thread."""
        return BatchedModel(self.batcher, self.temperature, self.predictor.refusal())

    async def logits(self, pixels: np.ndarray) -> np.ndarray:
        """Logits through the model thread, batched with other requests.

        Args:
          pixels: float32 (N, 28, 28) in [0, 1].

        Returns:
          float32 (N, 10) logits.
        """
        return (await self.forward(pixels))[0]

    async def forward(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and features through the model thread, batched with other requests.

        Args:
          pixels: float32 (N, 28, 28) in [0, 1].

        Returns:
          (float32 (N, 10) logits, float32 (N, D) features or None for a model without them).
        """
        return await asyncio.wrap_future(self.batcher.submit(pixels))

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, (N, 10) rows summing to 1, of (N, 10) logits."""
        return probabilities(logits, self.temperature)

    async def preprocess(self, data: bytes, for_model: bool = True) -> Processed:
        """An encoded image as MNIST's 28×28 (on the event loop when small, else in the preprocessing thread).

        Args:
          data: PNG/JPEG/GIF/BMP/WebP/... bytes.
          for_model: whether the model will run on it: the model thread then waits a moment to batch it.

        Returns:
          The processed image.

        Raises:
          ImageError: the image cannot be decoded (`ImageTooLarge` over `config.max_pixels`).
        """
        pending = 1 if for_model else 0
        self.batcher.pending += pending
        try:
            size = image_size(data)
            if size is not None and size[0] * size[1] <= INLINE_PIXELS:
                return self._preprocess(data)
            return await asyncio.get_running_loop().run_in_executor(self.pool, self._preprocess, data)
        finally:
            self.batcher.pending -= pending

    def _preprocess(self, data: bytes) -> Processed:
        return to_mnist_28x28(data, max_pixels=self.config.max_pixels)


def served(request: Request) -> ServedModel:
    """FastAPI dependency: the app's served model (`app.state.served`)."""
    return request.app.state.served


Served = Annotated[ServedModel, Depends(served)]
"""A route parameter annotated `Served` receives the app's `ServedModel`."""
