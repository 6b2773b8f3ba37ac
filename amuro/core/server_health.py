"""Whether a tracking server answers: one request to its ``/health``, with credentials kept out of sight."""

from __future__ import annotations

import time

from amuro.core.credentials import redact, split_credentials
from amuro.core.errors import UserError


def check_server(uri: str, timeout: float = 10.0) -> None:
    """Fail in one line when the tracking server does not answer ``/health``. A user and password in the URI
    (MLflow's client takes them) are sent as HTTP basic authentication and never shown."""
    import base64
    import urllib.error
    import urllib.request

    plain, credentials = split_credentials(uri)
    request = urllib.request.Request(plain.rstrip("/") + "/health")
    if credentials:
        token = base64.b64encode(":".join(credentials).encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"tracking server {redact(uri)} is unreachable ({reason}): start it or set "
            "MLFLOW_TRACKING_URI / --tracking-uri to a reachable one"
        ) from None


def wait_for_server(uri: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            check_server(uri, timeout=2.0)
            return
        except UserError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)
