"""The page's corrections ("Wrong? It was …"): a PNG per correction and one line in `index.jsonl`.

`digitlab finetune` reads this folder. The PNG is written first (atomically), then the index line, so an
index line never points at a missing file; appends are serialised by a lock and each line is written whole.
"""

from __future__ import annotations

import errno
import io
import json
import os
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from digitlab.atomic import atomic_write_bytes
from digitlab.data.preprocess import Processed

_FEEDBACK_LOCK = threading.Lock()


def store_feedback(folder: Path, data: bytes, processed: Processed, label: int, predicted: int | None) -> dict:
    """Store one correction: the PNG first (atomically), then the index line, which never points at a missing file.

    Args:
      folder: the feedback folder (created if missing).
      data: the image as sent (any format Pillow reads; stored as PNG).
      processed: its 28×28 as the model saw it (only `blank` is recorded).
      label: the true digit, 0-9.
      predicted: what the model said, 0-9, or None.

    Returns:
      The index record: id, file, label, predicted, blank, time (UTC, ISO 8601).

    Raises:
      OSError: the folder cannot take it (full, read-only); nothing is left half-written.
    """
    record_id = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, format="PNG")  # normalise whatever came in to PNG
    atomic_write_bytes(folder / f"{record_id}.png", buf.getvalue())
    record = {
        "id": record_id,
        "file": f"{record_id}.png",
        "label": label,
        "predicted": predicted,
        "blank": processed.blank,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    line = (json.dumps(record) + "\n").encode()
    with _FEEDBACK_LOCK:  # one writer at a time: lines never interleave
        fd = os.open(folder / "index.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:
                if os.write(fd, line) != len(line):
                    raise OSError(errno.ENOSPC, "short write")
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)  # a full disk never leaves half a line for finetune to trip on
                (folder / f"{record_id}.png").unlink(missing_ok=True)
                raise
        finally:
            os.close(fd)
    return record
