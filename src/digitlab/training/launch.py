"""`digitlab launch --workers N -- train ...`: a local multi-worker cluster on loopback ports.

Each worker is `python -m digitlab train ...` with its own `TF_CONFIG`; the custom loop sees the cluster and
picks MultiWorkerMirroredStrategy. Output is streamed line by line with a `[worker i]` prefix. If any worker
fails, the others are stopped and the launch fails with a message naming the worker and its exit status.
On several machines, run the same `digitlab train` on each with a TF_CONFIG naming every host (see README).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from digitlab.errors import ConfigError, LaunchError


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """Ask the OS for n distinct free ports (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(n: int, host: str = "127.0.0.1") -> list[dict]:
    """One TF_CONFIG per worker of an `n`-worker cluster on free local ports of `host`."""
    workers = [f"{host}:{port}" for port in free_ports(n, host)]
    return [{"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}} for i in range(n)]


def _stream(proc: subprocess.Popen, prefix: str, lock: threading.Lock) -> None:
    for line in proc.stdout:
        with lock:
            sys.stdout.write(f"{prefix} {line}")
            sys.stdout.flush()


def launch(command: list[str], workers: int = 2, timeout: float | None = None, host: str = "127.0.0.1") -> int:
    """Run `digitlab <command>` as `workers` processes of one cluster; return 0 when all succeed."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if not command:
        raise ConfigError("nothing to launch: put the command after `--`, e.g. `launch --workers 2 -- train ...`")
    if command[0] == "--":
        command = command[1:]
    procs, threads = _start_workers(command, workers, host)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        failed = _wait(procs, deadline)
    except KeyboardInterrupt:
        _stop(procs)
        raise
    if failed == TIMED_OUT:
        _stop(procs)
        raise LaunchError(f"the {workers}-worker cluster did not finish within {timeout:.0f} s; stopped all")
    if failed is not None:
        _stop(procs)
    for t in threads:
        t.join(timeout=5)
    if failed is not None:
        index, code = failed
        raise LaunchError(f"worker {index} exited with status {code}; stopped the other workers")
    return 0


def _start_workers(command: list[str], workers: int, host: str) -> tuple[list[subprocess.Popen], list]:
    """Start the worker processes, each with its TF_CONFIG, and a thread per worker that prefixes its output."""
    procs: list[subprocess.Popen] = []
    lock = threading.Lock()
    threads = []
    for i, config in enumerate(tf_configs(workers, host)):
        env = dict(os.environ, TF_CONFIG=json.dumps(config), PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.Popen(
            [sys.executable, "-m", "digitlab", *command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            start_new_session=True,  # so a stop can signal the worker's whole process group
        )
        procs.append(proc)
        t = threading.Thread(target=_stream, args=(proc, f"[worker {i}]", lock), daemon=True)
        t.start()
        threads.append(t)
    return procs, threads


TIMED_OUT = (-1, -1)


def _wait(procs: list[subprocess.Popen], deadline: float | None) -> tuple[int, int] | None:
    """Until every worker succeeded (None), one failed ((index, status)), or the deadline passed (`TIMED_OUT`)."""
    while True:
        codes = [p.poll() for p in procs]
        bad = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
        if bad:
            return bad[0]
        if all(c == 0 for c in codes):
            return None
        if deadline is not None and time.monotonic() > deadline:
            return TIMED_OUT
        time.sleep(0.1)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    end = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
