"""Files shared by the parallel workers of one test session, built once under a lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


def shared_folder(tmp_path_factory) -> Path:
    """A folder shared by the parallel workers of this test session (each worker has its own base temp)."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on ``path`` (created if missing) across the test workers."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
