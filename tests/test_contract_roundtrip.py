"""The tracking contract end to end: a real cell scored by amuro and read back through the
analysis, every contract column filled (result versions and the code that made it included), the
interval midpoint under the name both sides use."""

import warnings

import pytest

from amuro import __version__
from amuro.commands.pretrain_eval import pretrain_eval
from amuro.core.settings import EvalSettings, PretrainEvalSettings
from amuro.core.versions import git_commit
from amuro_contract import EVAL_METRICS, EVAL_TAG_COLUMNS, PREDICTION_COLUMNS
from analysis.predictions import PredictionTables
from analysis.runs import METRIC_COLUMNS, RUN_COLUMNS, load_eval_runs

# Columns a base checkpoint's run leaves empty by the contract (no fine-tune behind it).
EMPTY_FOR_A_BASE_RUN = {"train_seed", "reference"}


def test_a_scored_cell_reads_back_through_the_analysis(tracking_uri, small_series, tmp_path):
    pretrain_eval(
        PretrainEvalSettings(
            experiment="roundtrip",
            model=small_series,
            checkpoints="1",
            datasets="synth-nli",
            formats="default",
            eval=EvalSettings(max_examples=6, shots=1, bootstrap=50),
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the loader warns about nothing on its own runs
        runs = load_eval_runs("roundtrip", tracking_uri)
    [row] = runs.to_dict("records")
    assert list(runs.columns) == RUN_COLUMNS
    assert {name.replace(".", "_") for name in EVAL_TAG_COLUMNS} | set(EVAL_METRICS) <= set(RUN_COLUMNS)
    for column in RUN_COLUMNS:
        value = row[column]
        if column in EMPTY_FOR_A_BASE_RUN:
            assert value in ("", None) or value != value, column  # empty or missing
            continue
        assert value is not None and value == value and value != "", column
    assert (row["tuning"], row["train_dataset"], row["relation"]) == ("none", "none", "base")
    assert (row["eval_dataset"], row["format"], row["shots"], row["protocol"], row["origin"]) == (
        "synth-nli",
        "default",
        1,
        "amuro",
        "run",
    )
    assert (row["version_rendering"], row["version_scoring"], row["version_metric"]) == (
        "nli-1",
        "next-token-1",
        "accuracy-1",
    )
    assert (row["code_version"], row["git_commit"]) == (__version__, git_commit())
    assert row["score_ci_low"] <= row["score_ci_mid"] <= row["score_ci_high"]
    assert row["score_ci_mid"] == pytest.approx((row["score_ci_low"] + row["score_ci_high"]) / 2)
    assert row["n"] == 6 and set(METRIC_COLUMNS) <= set(row)
    assert row["eval_inputs"] and row["has_predictions"]
    table = PredictionTables(tracking_uri, tmp_path / "cache").get(row["run_id"])
    assert set(PREDICTION_COLUMNS) <= set(table.columns)
    assert len(table) == 6 and table["item_score"].mean() == pytest.approx(row["score"])
