"""Eval runs from a tracking store as one tidy frame, and their prediction tables on demand.

Everything here goes through the tracking contract (DESIGN.md, section 3): runs are found by
the tag ``amuro.kind = eval`` and described only by their ``amuro.*`` tags and metrics.
MLflow is imported inside the functions so that ``python -m analysis --help`` starts fast.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

TAG_PREFIX = "amuro."
TAG_COLUMNS = [
    "model", "revision", "step", "tokens", "tuning", "train_dataset", "eval_dataset", "task",
    "relation", "format", "shots", "metric", "seed", "source_run_id", "run_key",
]
METRIC_COLUMNS = ["score", "score_ci_low", "score_ci_high", "score_se", "n"]
INTEGER_TAGS = ["step", "shots"]
NULLABLE_INTEGER_TAGS = ["tokens", "seed"]
RUN_COLUMNS = (
    ["run_id", "experiment"] + TAG_COLUMNS + METRIC_COLUMNS + ["start_time", "has_predictions"]
)

# One evaluated configuration; several finished runs of the same cell are re-runs.
CELL_KEY = ["model", "step", "tuning", "train_dataset", "eval_dataset", "format", "shots", "seed"]

PREDICTIONS_ARTIFACT = "predictions.json"
_LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"  # set by mlflow.log_table
_PAGE_SIZE = 5000
_CONCURRENCY = 4


class DuplicateRunsWarning(UserWarning):
    """Several finished runs evaluated the same cell; only the newest is kept."""


class MalformedRunsWarning(UserWarning):
    """Eval runs whose step or shots tag is not an integer are left out."""


class TrackingError(Exception):
    """A user-facing problem with the tracking store: unreachable, unknown experiment, ..."""


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    import mlflow

    return tracking_uri or mlflow.get_tracking_uri()


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
            raise TrackingError(
                f"cannot reach the tracking server at {tracking_uri} ({type(exc).__name__})"
            ) from None
    elif tracking_uri.startswith("sqlite:///"):
        path = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
        if path and path != ":memory:" and not Path(path).exists():
            raise TrackingError(f"no tracking database at {tracking_uri} ({path} does not exist)")


def _client(tracking_uri: str | None):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))


def experiment_ids(names: list[str], tracking_uri: str | None = None) -> dict[str, str]:
    """Map experiment names to ids; an unknown name is a TrackingError."""
    client = _client(tracking_uri)
    ids = {}
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise TrackingError(
                f"no experiment named {name!r} at {resolve_tracking_uri(tracking_uri)}"
            )
        ids[name] = experiment.experiment_id
    return ids


def _quote(value: str) -> str:
    return f'"{value}"' if "'" in value else f"'{value}'"


def load_eval_runs(
    experiments: str | list[str],
    tracking_uri: str | None = None,
    *,
    model: str | None = None,
    page_size: int = _PAGE_SIZE,
    concurrency: int = _CONCURRENCY,
) -> pd.DataFrame:
    """All FINISHED eval runs of the experiments, one row per run (columns: ``RUN_COLUMNS``).

    ``step`` and ``shots`` are integers, ``tokens`` and ``seed`` nullable integers, the metrics
    floats (NaN when not logged). Re-runs of one cell (``CELL_KEY``) keep the newest run and
    raise a DuplicateRunsWarning naming how many were dropped.
    """
    uri = resolve_tracking_uri(tracking_uri)
    names = [experiments] if isinstance(experiments, str) else list(experiments)
    ids = experiment_ids(names, uri)
    name_by_id = {experiment_id: name for name, experiment_id in ids.items()}
    query = f"tags.\"{TAG_PREFIX}kind\" = 'eval' and attributes.status = 'FINISHED'"
    if model:
        query += f' and tags."{TAG_PREFIX}model" = {_quote(model)}'
    with _gc_paused():
        if uri.startswith(("http://", "https://")):
            records = _search_rest(uri, list(ids.values()), query, page_size, concurrency)
        else:
            records = _search_store(uri, list(ids.values()), query, page_size)
        frame = pd.DataFrame.from_records(records, columns=RUN_COLUMNS)
        frame["experiment"] = frame["experiment"].map(name_by_id)
        return _tidy(frame.drop_duplicates("run_id"))


@contextlib.contextmanager
def _gc_paused():
    """Building tens of thousands of small objects triggers the cyclic collector over and
    over (a 3x slowdown); none of them form cycles worth collecting meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _search_store(uri: str, experiment_ids: list[str], query: str, page_size: int) -> list[dict]:
    client = _client(uri)
    records, token = [], None
    while True:
        page = client.search_runs(experiment_ids, query, max_results=page_size, page_token=token)
        for run in page:
            records.append(_record(
                run.info.run_id, run.info.experiment_id, run.info.start_time,
                run.data.tags, run.data.metrics,
            ))
        token = page.token
        if not token:
            return records


def _search_rest(
    uri: str, experiment_ids: list[str], query: str, page_size: int, concurrency: int
) -> list[dict]:
    """Search through the REST API directly, reading the JSON as is (MLflow's protobuf
    conversion costs more than the transfer), in ``concurrency`` start-time windows at once
    so that a multi-worker server answers them in parallel."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    creds = get_default_host_creds(uri)
    endpoint = "/api/2.0/mlflow/runs/search"

    def search(body: dict) -> dict:
        response = http_request(creds, endpoint, "POST", json=body)
        return verify_rest_response(response, endpoint).json()

    def edge(order: str) -> int | None:
        runs = search({
            "experiment_ids": experiment_ids, "filter": query, "max_results": 1,
            "order_by": [f"attributes.start_time {order}"],
        }).get("runs", [])
        return int(runs[0]["info"]["start_time"]) if runs else None

    def window(bounds: tuple[int, int]) -> list[dict]:
        body = {
            "experiment_ids": experiment_ids, "max_results": page_size,
            "filter": f"{query} and attributes.start_time >= {bounds[0]}"
                      f" and attributes.start_time < {bounds[1]}",
        }
        records = []
        while True:
            page = search(body)
            for run in page.get("runs", []):
                info, data = run["info"], run.get("data", {})
                records.append(_record(
                    info["run_id"], info["experiment_id"], int(info.get("start_time", 0)),
                    {tag["key"]: tag.get("value", "") for tag in data.get("tags", [])},
                    {metric["key"]: metric.get("value") for metric in data.get("metrics", [])},
                ))
            if not page.get("next_page_token"):
                return records
            body["page_token"] = page["next_page_token"]

    first = edge("ASC")
    if first is None:
        return []
    last = edge("DESC") + 1
    cuts = [first + (last - first) * i // concurrency for i in range(concurrency)] + [last]
    windows = sorted({(low, high) for low, high in zip(cuts, cuts[1:]) if low < high})
    with ThreadPoolExecutor(max_workers=len(windows)) as pool:
        return [record for part in pool.map(window, windows) for record in part]


def _record(run_id: str, experiment_id: str, start_time: int, tags: dict, metrics: dict) -> dict:
    record = {
        "run_id": run_id,
        "experiment": experiment_id,
        "start_time": start_time,
        "has_predictions": PREDICTIONS_ARTIFACT in tags.get(_LOGGED_ARTIFACTS_TAG, ""),
    }
    for column in TAG_COLUMNS:
        record[column] = tags.get(TAG_PREFIX + column)
    for column in METRIC_COLUMNS:
        value = metrics.get(column)
        record[column] = np.nan if value is None else float(value)
    return record


def _integers(values: pd.Series) -> pd.Series:
    """Tag strings to nullable integers; empty or malformed values become <NA>."""
    numbers = pd.to_numeric(values.replace("", None), errors="coerce")
    whole = numbers.where(numbers == np.floor(numbers))
    return whole.astype("Int64")


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    for column in INTEGER_TAGS + NULLABLE_INTEGER_TAGS:
        frame[column] = _integers(frame[column])
    malformed = frame[INTEGER_TAGS].isna().any(axis=1)
    if malformed.any():
        warnings.warn(
            f"{int(malformed.sum())} eval run(s) left out: amuro.step or amuro.shots is not an "
            f"integer (e.g. run {frame.loc[malformed, 'run_id'].iloc[0]})",
            MalformedRunsWarning,
            stacklevel=3,
        )
        frame = frame[~malformed]
    frame = frame.astype({column: "int64" for column in INTEGER_TAGS})
    text = [c for c in TAG_COLUMNS if c not in INTEGER_TAGS + NULLABLE_INTEGER_TAGS]
    frame[text] = frame[text].fillna("").astype(str)
    frame = frame.astype({column: "float64" for column in METRIC_COLUMNS})
    frame["start_time"] = frame["start_time"].astype("int64")
    frame["has_predictions"] = frame["has_predictions"].astype(bool)

    frame = frame.sort_values(["start_time", "run_id"], kind="stable")
    newest = frame.drop_duplicates(subset=CELL_KEY, keep="last")
    dropped = len(frame) - len(newest)
    if dropped:
        warnings.warn(
            f"{dropped} older finished run(s) evaluated the same cell as a newer one "
            f"({', '.join(CELL_KEY)}); only the newest run of each cell is used",
            DuplicateRunsWarning,
            stacklevel=3,
        )
    return newest.sort_values(
        ["experiment", "model", "eval_dataset", "step", "tuning", "train_dataset", "format",
         "shots", "seed"], kind="stable"
    ).reset_index(drop=True)


def default_cache_dir() -> Path:
    """``$AMURO_HOME/predictions`` (default ``~/.cache/amuro/predictions``), beside the suite's other files."""
    if os.environ.get("AMURO_HOME"):
        return Path(os.environ["AMURO_HOME"]) / "predictions"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "amuro" / "predictions"


class PredictionTables:
    """Per-item prediction tables of eval runs, fetched on first use and cached.

    Finished runs do not change, so a table is kept in memory and on disk under
    ``cache_dir/<run_id>/predictions.json`` and never fetched twice.
    """

    def __init__(self, tracking_uri: str | None = None, cache_dir: str | Path | None = None):
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._tables: dict[str, pd.DataFrame | None] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str) -> pd.DataFrame | None:
        """The run's table (columns item_id, item_score, ...) or None when it has none."""
        with self._lock:
            if run_id in self._tables:
                return self._tables[run_id]
        table = self._read(run_id)
        with self._lock:
            self._tables[run_id] = table
        return table

    def prefetch(self, run_ids, workers: int = 8) -> None:
        """Fetch many tables concurrently (downloads are I/O bound)."""
        todo = [run_id for run_id in dict.fromkeys(run_ids) if run_id not in self._tables]
        if len(todo) > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(self.get, todo))
        elif todo:
            self.get(todo[0])

    def _read(self, run_id: str) -> pd.DataFrame | None:
        cached = self.cache_dir / run_id / PREDICTIONS_ARTIFACT
        if not cached.exists() and not self._download(run_id, cached):
            return None
        try:
            content = json.loads(cached.read_text())
            table = pd.DataFrame(content["data"], columns=content["columns"])
        except (ValueError, KeyError, TypeError):
            return None
        if not {"item_id", "item_score"} <= set(table.columns):
            return None
        return table

    def _download(self, run_id: str, destination: Path) -> bool:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        destination.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=destination.parent) as scratch:
            try:
                local = MlflowClient(self.tracking_uri).download_artifacts(
                    run_id, PREDICTIONS_ARTIFACT, scratch
                )
            except (MlflowException, OSError):
                return False
            # Atomic, so a concurrent reader never sees half a file.
            os.replace(local, destination)
        return True
