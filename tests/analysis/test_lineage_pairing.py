"""Dataset lineage: a tuned and a base run that logged (``mlflow.log_input``, context ``eval``)
the same dataset with different digests scored different rows, and are not compared."""

import json

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from contract import Cell, eval_tags

from analysis import gains, load_eval_runs
from analysis.cli import cli
from analysis.lineage import LineageWarning

MODEL = "tiny-lm"
TASKS = {"alpha": "nli"}
ROWS = pd.DataFrame(
    {
        "premise": [f"p{i}" for i in range(20)],
        "hypothesis": [f"h{i}" for i in range(20)],
        "label": [i % 3 for i in range(20)],
    }
)


def log_eval_run(
    experiment_id: str, cell: Cell, score: float, scored: pd.DataFrame, trained: pd.DataFrame | None = None
) -> str:
    """An eval run that records the rows it scored as its eval-context input (and, for a
    tuned one, its training rows under the same name in the train context)."""
    with mlflow.start_run(experiment_id=experiment_id, tags=eval_tags(cell, MODEL, TASKS)) as run:
        mlflow.log_metrics(
            {
                "score": score,
                "score_se": 0.02,
                "score_ci_low": score - 0.04,
                "score_ci_high": score + 0.04,
                "n": float(len(scored)),
            }
        )
        mlflow.log_input(mlflow.data.from_pandas(scored, name="alpha"), context="eval")
        if trained is not None:
            mlflow.log_input(mlflow.data.from_pandas(trained, name="alpha"), context="train")
        return run.info.run_id


def test_pairs_that_scored_different_rows_are_refused(tracking_uri):
    experiment_id = mlflow.create_experiment("lineage")
    first, second, train = ROWS.iloc[:10], ROWS.iloc[10:], ROWS.iloc[5:15]
    # Step 100: both scored rows 0-9 (the tuned run's training rows differ: no matter).
    log_eval_run(experiment_id, Cell(100, "none", "alpha"), 0.40, first)
    log_eval_run(experiment_id, Cell(100, "alpha", "alpha"), 0.70, first, trained=train)
    # Step 200: the tuned run scored rows 10-19, its base rows 0-9.
    base = log_eval_run(experiment_id, Cell(200, "none", "alpha"), 0.45, first)
    tuned = log_eval_run(experiment_id, Cell(200, "alpha", "alpha"), 0.90, second)

    runs = load_eval_runs("lineage", tracking_uri)
    digests = {
        name: mlflow.data.from_pandas(rows, name="alpha").digest
        for name, rows in (("first", first), ("second", second))
    }
    assert digests["first"] != digests["second"]
    inputs = runs.set_index("run_id")["eval_inputs"]
    assert inputs[tuned] == (("alpha", digests["second"]),)  # eval context only
    assert inputs[base] == (("alpha", digests["first"]),)

    result = CliRunner().invoke(
        cli, ["gains", "--experiment", "lineage", "--tracking-uri", tracking_uri, "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(row["step"], row["gain"]) for row in rows] == [(100, pytest.approx(0.30))]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert warnings == [
        f"Warning: tuned run {tuned} and base run {base} scored different rows of alpha "
        f"(digests {digests['second']} and {digests['first']}); not compared: score both on the "
        "same rows (same dataset revision and subsample) to pair them"
    ]
    # The refused tuned run is listed among the runs without a partner, with the reason.
    assert "Missing partners: 1 run(s)" in result.stderr
    assert f"base run {base} scored other rows of alpha" in result.stderr

    with pytest.warns(LineageWarning, match=f"tuned run {tuned} and base run {base}"):
        table = gains(runs).table
    assert list(table["step"]) == [100]
