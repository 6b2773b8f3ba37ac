"""Eval runs from a tracking store as one tidy frame.

Everything here goes through the tracking contract (docs/tracking-contract.md): runs are found by
the tag ``amuro.kind = eval`` and described only by their ``amuro.*`` tags, metrics and
eval-context dataset inputs. MLflow is imported inside the functions so that
``python -m analysis --help`` starts fast.
"""

from __future__ import annotations

import contextlib
import gc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from amuro_contract import CELL_KEY as CONTRACT_CELL_KEY
from amuro_contract import EVAL_CONTEXT, EVAL_METRICS, EVAL_TAG_COLUMNS, FORMER_METRIC_NAMES, PREFIX, TAG_DEFAULTS, Tag
from analysis.predictions import PREDICTIONS_ARTIFACT
from analysis.store import client, experiment_ids, quote, resolve_tracking_uri

# Column names are the tags' short names with dots as underscores (``version_scoring`` for amuro.version.scoring).
TAG_COLUMNS = [name.replace(".", "_") for name in EVAL_TAG_COLUMNS]
_TAG_OF_COLUMN = {name.replace(".", "_"): PREFIX + name for name in EVAL_TAG_COLUMNS}
METRIC_COLUMNS = list(EVAL_METRICS)
_FORMER_METRIC_NAMES = FORMER_METRIC_NAMES
INTEGER_TAGS = ["step", "shots"]
NULLABLE_INTEGER_TAGS = ["tokens", "model_params", "seed", "train_seed"]
RUN_COLUMNS = ["run_id", "experiment"] + TAG_COLUMNS + METRIC_COLUMNS + ["eval_inputs", "start_time", "has_predictions"]
CELL_KEY = list(CONTRACT_CELL_KEY)
_CONTEXT_TAG = "mlflow.data.context"
_LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"  # set by mlflow.log_table
_PAGE_SIZE = 5000
_CONCURRENCY = 4


class DuplicateRunsWarning(UserWarning):
    """Several finished runs evaluated the same cell; only the newest is kept."""


class MalformedRunsWarning(UserWarning):
    """Eval runs whose step or shots tag is not an integer are left out."""


def load_eval_runs(
    experiments: str | list[str],
    tracking_uri: str | None = None,
    *,
    model: str | None = None,
) -> pd.DataFrame:
    """All FINISHED eval runs of the experiments, one row per run (columns: ``RUN_COLUMNS``).

    ``step`` and ``shots`` are integers, ``tokens``, ``seed`` and ``train_seed`` nullable
    integers, the metrics floats (NaN when not logged); ``protocol`` and ``origin`` default to
    ``amuro`` and ``run``; ``eval_inputs`` holds the (name, digest) of each dataset the run
    logged with context ``eval``. Re-runs of one cell (``CELL_KEY``) keep the newest run and
    raise a DuplicateRunsWarning naming how many were dropped.
    """
    uri = resolve_tracking_uri(tracking_uri)
    names = [experiments] if isinstance(experiments, str) else list(experiments)
    ids = experiment_ids(names, uri)
    name_by_id = {experiment_id: name for name, experiment_id in ids.items()}
    query = f"tags.\"{Tag.KIND}\" = 'eval' and attributes.status = 'FINISHED'"
    if model:
        query += f' and tags."{Tag.MODEL}" = {quote(model)}'
    with _gc_paused():
        if uri.startswith(("http://", "https://")):
            records = _search_rest(uri, list(ids.values()), query, _PAGE_SIZE, _CONCURRENCY)
        else:
            records = _search_store(uri, list(ids.values()), query, _PAGE_SIZE)
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


def _search_store(uri: str, ids: list[str], query: str, page_size: int) -> list[dict]:
    store = client(uri)
    records, token = [], None
    while True:
        page = store.search_runs(ids, query, max_results=page_size, page_token=token)
        for run in page:
            inputs = [
                (item.dataset.name, item.dataset.digest, {tag.key: tag.value for tag in item.tags})
                for item in (run.inputs.dataset_inputs if run.inputs else [])
            ]
            records.append(
                _record(
                    run.info.run_id,
                    run.info.experiment_id,
                    run.info.start_time,
                    run.data.tags,
                    run.data.metrics,
                    inputs,
                )
            )
        token = page.token
        if not token:
            return records


def _search_rest(uri: str, ids: list[str], query: str, page_size: int, concurrency: int) -> list[dict]:
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
        runs = search(
            {
                "experiment_ids": ids,
                "filter": query,
                "max_results": 1,
                "order_by": [f"attributes.start_time {order}"],
            }
        ).get("runs", [])
        return int(runs[0]["info"]["start_time"]) if runs else None

    def window(bounds: tuple[int, int]) -> list[dict]:
        body = {
            "experiment_ids": ids,
            "max_results": page_size,
            "filter": f"{query} and attributes.start_time >= {bounds[0]} and attributes.start_time < {bounds[1]}",
        }
        records = []
        while True:
            page = search(body)
            for run in page.get("runs", []):
                info, data = run["info"], run.get("data", {})
                inputs = [
                    (
                        item["dataset"].get("name", ""),
                        item["dataset"].get("digest", ""),
                        {tag["key"]: tag.get("value", "") for tag in item.get("tags", [])},
                    )
                    for item in run.get("inputs", {}).get("dataset_inputs", [])
                ]
                records.append(
                    _record(
                        info["run_id"],
                        info["experiment_id"],
                        int(info.get("start_time", 0)),
                        {tag["key"]: tag.get("value", "") for tag in data.get("tags", [])},
                        {metric["key"]: metric.get("value") for metric in data.get("metrics", [])},
                        inputs,
                    )
                )
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


def _record(run_id: str, experiment_id: str, start_time: int, tags: dict, metrics: dict, inputs: list) -> dict:
    """One run as a row. ``inputs``: (dataset name, digest, input tags) of each logged input;
    only the eval-context ones are kept, as a sorted tuple of (name, digest)."""
    record = {
        "run_id": run_id,
        "experiment": experiment_id,
        "start_time": start_time,
        "has_predictions": PREDICTIONS_ARTIFACT in tags.get(_LOGGED_ARTIFACTS_TAG, ""),
        "eval_inputs": tuple(
            sorted(
                {(name, digest) for name, digest, input_tags in inputs if input_tags.get(_CONTEXT_TAG) == EVAL_CONTEXT}
            )
        ),
    }
    for column in TAG_COLUMNS:
        record[column] = tags.get(_TAG_OF_COLUMN[column])
    for column in METRIC_COLUMNS:
        value = metrics.get(column, metrics.get(_FORMER_METRIC_NAMES.get(column, "")))
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
    for column, default in TAG_DEFAULTS.items():
        frame[column] = frame[column].replace("", default)
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
        [
            "experiment",
            "model",
            "eval_dataset",
            "step",
            "tuning",
            "train_dataset",
            "format",
            "shots",
            "seed",
            "train_seed",
        ],
        kind="stable",
    ).reset_index(drop=True)
