"""What the benches share: the commit measured, a free port, a served model, a timed command, the results file.

Imported by the bench scripts beside it (a script's folder is on sys.path): `from _common import ...`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
DIGITLAB = [sys.executable, "-m", "digitlab"]


def commit_measured() -> str:
    """The commit measured, marked +uncommitted when src/ has changes."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + ("+uncommitted" if dirty else "")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, server: subprocess.Popen, timeout: float = 120, poll: float = 0.01) -> None:
    """Until /readyz answers; exits with a message if the server dies or takes longer than `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not become ready") from None
            time.sleep(poll)


@contextmanager
def served(model: str | Path, *flags: str, quiet: bool = True) -> Iterator[tuple[int, subprocess.Popen]]:
    """`digitlab serve --model MODEL FLAGS` on a free port, ready: yields (port, process); stopped on exit."""
    port = free_port()
    out = subprocess.DEVNULL if quiet else None
    server = subprocess.Popen(
        [*DIGITLAB, "serve", "--model", str(model), "--port", str(port), *flags], stdout=out, stderr=out
    )
    try:
        wait_ready(port, server)
        yield port, server
    finally:
        server.terminate()
        server.wait(timeout=30)


def timed_command(args: list[str]) -> float:
    """Seconds a whole `digitlab ARGS` command takes, from process start to exit (it must succeed)."""
    start = time.perf_counter()
    subprocess.run([*DIGITLAB, *args], check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - start, 2)


def timings(fn: Callable[[], Any], repeats: int, warmup: int = 0) -> list[float]:
    """Seconds each of `repeats` calls of `fn` takes, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def write_results(path: Path, data: Any) -> Path:
    """Write a bench's committed JSON (indented, one trailing newline) atomically; returns the path."""
    from digitlab.atomic import atomic_write_json

    return atomic_write_json(path, data)
