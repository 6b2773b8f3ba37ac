"""Faults of the machine or the tracking server as one line naming the cause and what to do, no traceback.

A full disk, or a tracking server that stopped answering, ends the command; what was logged stays, and running
the same command again resumes what did not finish (runs are keyed and resumable).
"""

from __future__ import annotations

import errno

import mlflow

from amuro.core.credentials import redact
from amuro.core.errors import UserError
from amuro.core.paths import amuro_home

_DISK_FULL_WORDS = ("No space left on device", "StorageFull", "os error 28", "Errno 28")
_GONE_WORDS = (
    "Connection refused",
    "Max retries exceeded",
    "ConnectionError",
    "Failed to establish",
    "RemoteDisconnected",
    "Connection aborted",
    "Read timed out",
)


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _disk_full(exc: BaseException) -> BaseException | None:
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno == errno.ENOSPC:
            return link
        if any(word in str(link) for word in _DISK_FULL_WORDS):
            return link
    return None


def _server_gone(exc: BaseException, uri: str) -> bool:
    if not uri.startswith(("http://", "https://")):
        return False
    if not any(any(word in f"{type(link).__name__}: {link}" for word in _GONE_WORDS) for link in _chain(exc)):
        return False
    from amuro.core.server_health import check_server

    try:
        check_server(uri, timeout=5)
    except UserError:
        return True
    return False


def as_user_error(exc: BaseException) -> UserError | None:
    """The one-line error for a fault of the disk or the tracking server; None for anything else (a bug)."""
    full = _disk_full(exc)
    if full is not None:
        where = f" while writing {full.filename}" if getattr(full, "filename", None) else ""
        return UserError(
            f"no space left on the disk{where}: free space (amuro's files are under {amuro_home()}, "
            "checkpoints and artifacts where the tracking store keeps them) and run the same command "
            "again: what was logged stays, and unfinished runs resume"
        )
    uri = mlflow.get_tracking_uri()
    if _server_gone(exc, uri):
        return UserError(
            f"the tracking server {redact(uri)} stopped answering: restart it and run the same command "
            "again: finished runs are kept and unfinished ones resume"
        )
    return None
