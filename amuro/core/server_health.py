"""Whether a tracking server answers: its ``/health``, then one real API call, credentials kept out of sight.

``/health`` is exempt from MLflow's Host-header check, so a server that refuses the host name its clients use
(``403 Invalid Host header`` unless ``mlflow server --allowed-hosts`` names it) still answers it: the API call
(a search for one experiment, through MLflow's own client and its credentials) is what finds that out.
"""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit

from amuro.core.credentials import redact, split_credentials
from amuro.core.errors import UserError


class ServerRefused(UserError):
    """The server answers, but refuses amuro's requests: waiting does not help."""


def check_server(uri: str, timeout: float = 10.0) -> None:
    """Fail in one line when the tracking server does not answer ``/health`` or refuses an API call. A user and
    password in the URI (MLflow's client takes them) are sent as HTTP basic authentication and never shown."""
    _check_http_settings()
    _check_health(uri, timeout)
    _check_api(uri)


def _check_http_settings() -> None:
    """MLflow reads its request settings from the environment at every request, where a value it cannot read
    fails mid-run: read them once, first."""
    from mlflow import environment_variables as mlflow_settings

    for variable in (
        mlflow_settings.MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        mlflow_settings.MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        mlflow_settings.MLFLOW_HTTP_REQUEST_BACKOFF_JITTER,
        mlflow_settings.MLFLOW_HTTP_REQUEST_TIMEOUT,
    ):
        try:
            variable.get()
        except ValueError:
            kind = "whole number" if variable.type is int else "number"
            raise UserError(
                f"{variable.name}={os.environ[variable.name]!r} is not a {kind}: set it to one, or unset it"
            ) from None


def _check_health(uri: str, timeout: float) -> None:
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


def _check_api(uri: str) -> None:
    """One ``experiments/search`` (max 1 result) through ``MlflowClient``, with the credentials MLflow's client
    takes (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``/``TOKEN``; ``tracking.connect`` moves a URI's there)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    plain, credentials = split_credentials(uri)
    if credentials:
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", credentials[0])
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", credentials[1])
    try:
        MlflowClient(tracking_uri=plain).search_experiments(max_results=1)
    except MlflowException as exc:
        message = str(exc)
        if "Invalid Host header" in message:
            host = urlsplit(plain).netloc
            raise ServerRefused(
                f"tracking server {redact(uri)} refuses the host name {host} (403 Invalid Host header): start it "
                f"with `mlflow server --allowed-hosts {host}` (every name clients use, with its port), or connect "
                "through a name it allows"
            ) from None
        first = (message.strip().splitlines() or [type(exc).__name__])[0][:200]
        refused = ServerRefused if any(f"error code {code}" in message for code in (401, 403)) else UserError
        raise refused(
            f"tracking server {redact(uri)} answers /health but refused an API call ({first}): check the "
            "credentials (MLFLOW_TRACKING_USERNAME/PASSWORD or the URI's user:password) and that the URI is "
            "the tracking server's root"
        ) from None


def wait_for_server(uri: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            check_server(uri, timeout=2.0)
            return
        except ServerRefused:
            raise
        except UserError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)
