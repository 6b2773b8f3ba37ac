"""The released tables read into eval runs of the tracking contract (tags, metrics, params).

Two kinds of table (``data/README.md``): the per-format table (columns ``model_id, eval
dataset, Performance, std``; ``std`` is the bootstrap standard error, and Performance the
midpoint of the bootstrap interval) and the multiple-choice table of OLMo's evaluation
pipeline (no ``std``, 4-shot; each score is a whole number of items of the set's validation
split, so ``n`` is known and the standard error is the binomial one). Intervals are
score ± 1.96 standard errors (``amuro.ci_method``). Every row becomes one run; nothing is
logged until every row of every table has been read.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from amuro_contract import Metric, Tag
from analysis.intervals import Z_95
from analysis.published.ids import (
    MODEL,
    MULTIPLE_CHOICE_SHOTS,
    REFERENCE,
    TASKS,
    VALIDATION_ITEMS,
    PublishedTableError,
    metric,
    parse_eval_dataset,
    parse_model_id,
    relation,
)

DATA = Path(__file__).resolve().parent / "data"
SHIPPED_TABLES = (DATA / "all_perf_table.csv", DATA / "official_eval_table.csv")
# The study's runs are from June 2024; rows are timed from then, a millisecond apart.
RELEASE_TIME_MS = 1_717_200_000_000
REQUIRED_COLUMNS = ("model_id", "eval dataset", "Performance")
CI_FROM_SE = "normal-from-se"
CI_FROM_BINOMIAL = "normal-binomial"


@dataclass(frozen=True)
class PublishedRun:
    run_key: str
    run_name: str
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str] = field(default_factory=dict)
    start_time: int = RELEASE_TIME_MS


def published_runs(paths=SHIPPED_TABLES) -> list[PublishedRun]:
    """Every row of every table as a run. Where two rows describe the same cell (the study
    re-scored a cell under another id, or tried another learning rate once), the row whose
    model id the table uses more often is timed later, so it is the one the analysis keeps."""
    rows = [row for path in paths for row in _read(Path(path))]
    uses: dict[str, int] = {}
    for _, model_id, _ in rows:
        uses[model_id] = uses.get(model_id, 0) + 1
    order = sorted(range(len(rows)), key=lambda i: (uses[rows[i][1]], i))
    runs = []
    for rank, i in enumerate(order):
        run = rows[i][2]
        runs.append(PublishedRun(run.run_key, run.run_name, run.tags, run.metrics, run.params, RELEASE_TIME_MS + rank))
    return runs


def _read(path: Path) -> list[tuple[int, str, PublishedRun]]:
    try:
        table = pd.read_csv(path, index_col=0, dtype={"model_id": str, "eval dataset": str})
    except (OSError, ValueError) as error:
        raise PublishedTableError(f"cannot read {path}: {error}") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise PublishedTableError(
            f"{path} is not a released results table: no column {', '.join(missing)} (expected "
            f"{', '.join(REQUIRED_COLUMNS)} and, for the per-format table, std)"
        )
    multiple_choice = "std" not in table.columns
    rows = []
    for index, record in table.iterrows():
        try:
            run = _run(record, multiple_choice)
        except PublishedTableError as error:
            raise PublishedTableError(f"{path.name} row {index}: {error}; correct the row or leave it out") from None
        rows.append((len(rows), str(record["model_id"]), run))
    return rows


def _number(record, column: str) -> float:
    try:
        value = float(record[column])
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0 or (column == "Performance" and value > 1):
        raise PublishedTableError(f"{column} {record[column]!r} is not a score in [0, 1]")
    return value


def _run(record, multiple_choice: bool) -> PublishedRun:
    model_id, raw_dataset = str(record["model_id"]), str(record["eval dataset"])
    checkpoint = parse_model_id(model_id, MULTIPLE_CHOICE_SHOTS if multiple_choice else 0)
    dataset, prompt_format = parse_eval_dataset(raw_dataset, multiple_choice)
    score = _number(record, "Performance")
    metrics = {Metric.SCORE: score, Metric.CI_MID: score}
    if multiple_choice:
        # No standard error was released; the score is a fraction of a known item count.
        metrics[Metric.N] = float(VALIDATION_ITEMS[dataset])
        se = math.sqrt(score * (1 - score) / metrics[Metric.N])
    else:
        se = _number(record, "std")
    metrics.update({Metric.SE: se, Metric.CI_LOW: score - Z_95 * se, Metric.CI_HIGH: score + Z_95 * se})
    kind = "multiple-choice" if multiple_choice else "per-format"
    key_source = {
        "origin": "published",
        "reference": REFERENCE,
        "table": kind,
        "model_id": model_id,
        "eval_dataset": raw_dataset,
    }
    run_key = hashlib.sha256(json.dumps(key_source, sort_keys=True).encode()).hexdigest()[:20]
    tags = {
        Tag.KIND: "eval",
        Tag.ORIGIN: "published",
        Tag.REFERENCE: REFERENCE,
        Tag.PROTOCOL: "study",
        Tag.MODEL: MODEL,
        Tag.REVISION: checkpoint.revision,
        Tag.STEP: str(checkpoint.step),
        Tag.TOKENS: "",
        Tag.TUNING: checkpoint.tuning,
        Tag.TRAIN_DATASET: checkpoint.train_dataset,
        Tag.EVAL_DATASET: dataset,
        Tag.TASK: TASKS[dataset],
        Tag.RELATION: relation(checkpoint.train_dataset, dataset),
        Tag.FORMAT: prompt_format,
        Tag.SHOTS: str(checkpoint.shots),
        Tag.METRIC: metric(dataset),
        Tag.SEED: "",
        Tag.TRAIN_SEED: "",
        Tag.SOURCE_RUN_ID: "",
        Tag.RUN_KEY: run_key,
        Tag.CI_METHOD: CI_FROM_BINOMIAL if multiple_choice else CI_FROM_SE,
        Tag.PUBLISHED_ID: model_id,
        Tag.PUBLISHED_TABLE: kind,
    }
    params = {}
    if checkpoint.tuning != "none":
        params = {"epochs": checkpoint.epochs, "learning_rate": checkpoint.learning_rate}
    run_name = f"published {model_id} → {raw_dataset}"
    return PublishedRun(run_key, run_name, tags, metrics, params)
