"""Artifact uploads of multi-GB models through a tracking server that proxies its artifact store.

amuro keeps MLflow's HTTP timeout short (a vanished server must fail a command fast), but a server proxying
an object store stages a file it receives before it replies: a 4.7 GB model answers minutes after its last
byte. So each large upload runs under a timeout sized for its largest file, and files of 500 MB and more go
by MLflow's multipart upload, straight to the object store in parts through URLs the server signs (servers
whose store has no multipart upload, a local folder, take the whole file as before).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path

TIMEOUT_VARIABLE = "MLFLOW_HTTP_REQUEST_TIMEOUT"
SHORT_TIMEOUT_S = 20
SLOWEST_RATE = 10 * 1024**2  # bytes per second a server is assumed to stage a file at, at worst
CHUNK_SIZE = 64 * 1024**2  # 9 GB of optimizer state in 144 parts; S3 takes up to 10,000

_lock = threading.Lock()
_active: list[int] = []
_short: list[str | None] = []


def configure_http_uploads() -> None:
    """MLflow's settings for an HTTP tracking server, unless set already: the short timeout, and multipart
    uploads through the proxy."""
    os.environ.setdefault(TIMEOUT_VARIABLE, str(SHORT_TIMEOUT_S))
    os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    os.environ.setdefault("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(CHUNK_SIZE))


def largest_file(path: str | Path) -> int:
    """Bytes of ``path``, or of the largest file under it."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return max((p.stat().st_size for p in path.rglob("*") if p.is_file()), default=0)


def timeout_for(nbytes: int, short: int = SHORT_TIMEOUT_S) -> int:
    """Seconds one request carrying ``nbytes`` may take: the short timeout plus staging at the slowest rate."""
    return short + math.ceil(nbytes / SLOWEST_RATE)


@contextlib.contextmanager
def sized_timeout(nbytes: int) -> Iterator[int]:
    """MLflow's HTTP timeout raised for files up to ``nbytes`` while the block runs (uploads of other threads
    may overlap: the longest wins, and the timeout set before comes back when the last ends)."""
    with _lock:
        if not _active:
            _short[:] = [os.environ.get(TIMEOUT_VARIABLE)]
        short = int(_short[0] or SHORT_TIMEOUT_S)
        seconds = max(short, timeout_for(nbytes, short))
        _active.append(seconds)
        os.environ[TIMEOUT_VARIABLE] = str(max(_active))
    try:
        yield seconds
    finally:
        with _lock:
            _active.remove(seconds)
            if _active:
                os.environ[TIMEOUT_VARIABLE] = str(max(_active))
            elif _short[0] is None:
                os.environ.pop(TIMEOUT_VARIABLE, None)
            else:
                os.environ[TIMEOUT_VARIABLE] = _short[0]
