"""The tracking store: resolving its URI, failing fast when it is not there, experiment ids.

MLflow is imported inside the functions so that ``python -m analysis --help`` starts fast.
"""

from __future__ import annotations

from pathlib import Path


class TrackingError(Exception):
    """A user-facing problem with the tracking store: unreachable, unknown experiment, ..."""


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The URI to read (MLflow's resolution when none is given). A user and password in it move to
    ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, MLflow's own way to pass them, so the URI shown and logged
    carries none."""
    import os
    from urllib.parse import unquote, urlsplit, urlunsplit

    import mlflow

    uri = tracking_uri or mlflow.get_tracking_uri()
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(user))
    os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", unquote(password))
    return urlunsplit(parts._replace(netloc=host))


def check_tracking_uri(tracking_uri: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the URI, when the store is plainly not there.

    A missing sqlite file would otherwise be created empty, and an unreachable server would
    be retried by MLflow for minutes.
    """
    if tracking_uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(tracking_uri.rstrip("/") + "/health", timeout=timeout)
        except requests.RequestException as exc:
            raise TrackingError(f"cannot reach the tracking server at {tracking_uri} ({type(exc).__name__})") from None
    elif tracking_uri.startswith("sqlite:///"):
        path = tracking_uri[len("sqlite:///") :].split("?", 1)[0]
        if path and path != ":memory:" and not Path(path).exists():
            raise TrackingError(f"no tracking database at {tracking_uri} ({path} does not exist)")


def client(tracking_uri: str | None = None):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))


def experiment_ids(names: list[str], tracking_uri: str | None = None) -> dict[str, str]:
    """Map experiment names to ids; an unknown name is a TrackingError."""
    store = client(tracking_uri)
    ids = {}
    for name in names:
        experiment = store.get_experiment_by_name(name)
        if experiment is None:
            raise TrackingError(f"no experiment named {name!r} at {resolve_tracking_uri(tracking_uri)}")
        ids[name] = experiment.experiment_id
    return ids


def quote(value: str) -> str:
    """A string literal for an MLflow search filter."""
    return f'"{value}"' if "'" in value else f"'{value}'"
