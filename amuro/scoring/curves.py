"""Score against pre-training step, drawn by MLflow's own charts.

A parent run (pretrain-eval's and crosseval's invocation group, the sweep run) logs each eval cell's score as
a metric with ``step`` = the base checkpoint's pre-training step, so the run's chart view draws the study's
curves with no report: ``base/<eval set>/<format>`` for base checkpoints and
``tuned/<training set>/<eval set>/<format>`` for tuned models. Seed replicates of a tuned cell are drawn as
their mean. A point already logged at a step is not logged again, so a re-run adds nothing.
"""

from __future__ import annotations

import re
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from amuro.core.tracking import Tag

_NOT_IN_METRIC_NAMES = re.compile(r"[^A-Za-z0-9_\-. :/]")
ID_SEARCH_CHUNK = 100


def curve_key(tags: dict[str, str]) -> str:
    """The metric a cell's score is drawn under, from its contract tags."""
    name = lambda tag: _NOT_IN_METRIC_NAMES.sub("_", tags.get(tag, "") or "none")  # noqa: E731
    if tags.get(Tag.TUNING, "none") == "none":
        return f"base/{name(Tag.EVAL_DATASET)}/{name(Tag.FORMAT)}"
    return f"tuned/{name(Tag.TRAIN_DATASET)}/{name(Tag.EVAL_DATASET)}/{name(Tag.FORMAT)}"


def log_curves(parent_run_id: str, eval_runs: Iterable, prefix: str = "") -> int:
    """Log the finished eval runs' scores on the parent by step (means over replicates), under ``prefix`` + their
    curve's name (one series' apart from another's); returns points logged."""
    points: dict[tuple[str, int], list[float]] = defaultdict(list)
    for run in eval_runs:
        score = run.data.metrics.get("score")
        step = run.data.tags.get(Tag.STEP, "")
        if score is not None and step.isdigit():
            points[(prefix + curve_key(run.data.tags), int(step))].append(score)
    client = MlflowClient()
    logged = client.get_run(parent_run_id).data.metrics if points else {}  # only these have a history to read
    have: dict[str, set[int]] = {}
    new = []
    now = int(time.time() * 1000)
    for (key, step), scores in sorted(points.items()):
        if key not in have:
            have[key] = {m.step for m in client.get_metric_history(parent_run_id, key)} if key in logged else set()
        if step not in have[key]:
            new.append(Metric(key, statistics.fmean(scores), now, step))
    for start in range(0, len(new), 1000):
        client.log_batch(parent_run_id, metrics=new[start : start + 1000])
    return len(new)


def log_cell_curves(experiment_id: str, parent_run_id: str, run_ids: Sequence[str]) -> int:
    """``log_curves`` for eval runs of the experiment given by id (read in a few searches, not one by one)."""
    client = MlflowClient()
    runs = []
    for start in range(0, len(run_ids), ID_SEARCH_CHUNK):
        chunk = run_ids[start : start + ID_SEARCH_CHUNK]
        listed = ", ".join(f"'{run_id}'" for run_id in chunk)
        runs += client.search_runs([experiment_id], f"attributes.run_id IN ({listed})", max_results=len(chunk))
    return log_curves(parent_run_id, runs)
