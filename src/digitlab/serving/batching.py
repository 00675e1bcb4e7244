"""Micro-batching: one thread owns the model; requests that arrive together share one model call.

A model call on a batch of 4 costs about as much as a call on 1, so the model thread takes everything
already queued and, while requests are still being preprocessed (`pending`), waits up to `max_wait` for them.
The event loop never waits on TensorFlow: it awaits a future.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

import numpy as np

from digitlab.inference.predictor import Predictor

BATCH_WAIT_S = 0.002  # how long the model thread waits for requests still being preprocessed


class BatchPredictor:
    """One thread owns the model; callers submit (N, 28, 28) arrays and get logits and features back via futures.

    Args:
      predictor: the loaded model; its `forward` runs on the model thread only.
      max_batch: the most images in one model call (a batch may start over it: one request is never split).
      max_wait: how long, in seconds, a batch waits for requests still being preprocessed (`pending`).
    """

    def __init__(self, predictor: Predictor, max_batch: int = 64, max_wait: float = BATCH_WAIT_S):
        self._forward = predictor.forward
        self._queue: queue.Queue = queue.Queue()
        self.max_batch = max_batch
        self.max_wait = max_wait
        # requests being preprocessed that will come here next (written by the event loop thread only): while
        # there are any, a batch waits up to `max_wait` for them, since one model call on a batch of 4 costs
        # about as much as one on a batch of 1
        self.pending = 0
        self._thread = threading.Thread(target=self._run, name="digitlab-model", daemon=True)
        self._forward(np.zeros((1, 28, 28, 1), np.float32))  # trace before serving
        self._thread.start()

    def submit(self, pixels: np.ndarray) -> Future:
        """Queue images for the model thread.

        Args:
          pixels: float32 (N, 28, 28) in [0, 1].

        Returns:
          A future of their (float32 (N, 10) logits, float32 (N, D) features or None) (or of the model's
          exception).
        """
        future: Future = Future()
        self._queue.put((pixels, future))
        return future

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            count = len(items[0][0])
            deadline = time.monotonic() + self.max_wait
            while count < self.max_batch:  # what is already waiting, and what is about to arrive: the batch
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if self.pending <= 0 or remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                items.append(item)
                count += len(item[0])
            try:
                logits, features = self._forward(np.concatenate([p for p, _ in items]))
                start = 0
                for pixels, future in items:
                    part = slice(start, start + len(pixels))
                    future.set_result((logits[part], None if features is None else features[part]))
                    start += len(pixels)
            except Exception as e:  # never leave a caller waiting
                for _, future in items:
                    if not future.done():
                        future.set_exception(e)
