"""Loading eval runs and prediction tables through the tracking contract."""

import warnings

import pandas as pd
import pytest
from planted import EXPERIMENT, MODEL, OTHER_EXPERIMENT, free_port

from analysis.predictions import PredictionTables
from analysis.runs import RUN_COLUMNS, DuplicateRunsWarning, load_eval_runs
from analysis.store import TrackingError, check_tracking_uri

COUNTED = {
    "base-alpha-100",
    "base-alpha-100-instruct",
    "base-alpha-100-io",
    "base-alpha-200",
    "base-beta-100",
    "base-beta-200",
    "base-gamma-100",
    "base-gamma-200",
    "base-delta-100",
    "alpha-alpha-100",
    "alpha-alpha-100-instruct",
    "alpha-alpha-200",
    "alpha-alpha-300",
    "alpha-beta-100",
    "alpha-beta-200",
    "alpha-gamma-100",
    "alpha-gamma-200",
    "alpha-delta-100",
    "beta-beta-100",
    "beta-beta-200",
}


def test_one_row_per_finished_eval_run(runs, store):
    assert list(runs.columns) == RUN_COLUMNS
    assert set(runs["run_id"]) == {store.runs[label] for label in COUNTED}
    assert set(runs["experiment"]) == {EXPERIMENT}


def test_tags_and_metrics_are_typed(runs, store):
    assert runs["step"].dtype == "int64" and runs["shots"].dtype == "int64"
    for column in ["tokens", "seed", "train_seed"]:
        assert str(runs[column].dtype) == "Int64"
    for column in ["score", "score_ci_low", "score_ci_high", "score_se", "n", "score_ci_mid"]:
        assert runs[column].dtype == "float64"
    row = runs.set_index("run_id").loc[store.runs["base-alpha-100"]]
    assert row["tokens"] == 419_430_400
    assert (row["score"], row["score_ci_low"], row["score_ci_high"]) == (0.40, 0.35, 0.45)
    assert (row["score_se"], row["n"]) == (0.02, 5.0)
    assert (row["model"], row["revision"], row["tuning"], row["train_dataset"]) == (MODEL, "step100", "none", "none")
    assert (row["task"], row["relation"], row["format"], row["metric"]) == ("nli", "base", "default", "accuracy")
    assert row["run_key"] == "key-base-alpha-100" and row["source_run_id"] == ""
    # Absent tags read as the contract says: protocol amuro, origin run, no train seed.
    assert (row["protocol"], row["origin"], row["eval_inputs"]) == ("amuro", "run", ())
    assert pd.isna(row["train_seed"]) and runs["score_ci_mid"].isna().all()
    assert row["has_predictions"]
    assert runs["tokens"].isna().sum() == len(runs) - 1
    assert not runs.set_index("run_id").loc[store.runs["base-beta-100"], "has_predictions"]


def test_newest_of_duplicate_cells_is_kept_with_a_warning(store):
    with pytest.warns(DuplicateRunsWarning, match="1 older finished run"):
        frame = load_eval_runs(EXPERIMENT, store.uri)
    assert store.runs["old-duplicate"] not in set(frame["run_id"])


def test_model_filter_and_several_experiments(store):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DuplicateRunsWarning)
        assert load_eval_runs(EXPERIMENT, store.uri, model="someone-else").empty
        assert len(load_eval_runs(EXPERIMENT, store.uri, model=MODEL)) == len(COUNTED)
        both = load_eval_runs([EXPERIMENT, OTHER_EXPERIMENT], store.uri)
    assert len(both) == len(COUNTED) + 1
    other = both[both["experiment"] == OTHER_EXPERIMENT]
    assert list(other["run_id"]) == [store.runs["other-experiment"]]
    assert list(other["step"]) == [400]


def test_unknown_experiment(store):
    with pytest.raises(TrackingError, match="no experiment named 'nope'"):
        load_eval_runs("nope", store.uri)


def test_prediction_tables_are_fetched_once_and_cached_on_disk(store, tmp_path):
    tables = PredictionTables(store.uri, tmp_path / "cache")
    run_id = store.runs["alpha-alpha-200"]
    table = tables.get(run_id)
    assert len(table) == 20 and {"item_id", "prediction", "reference", "item_score"} <= set(table)
    assert table["item_score"].sum() == 18
    assert (tmp_path / "cache" / run_id / "predictions.json").exists()
    assert tables.get(store.runs["base-beta-100"]) is None
    # A fresh reader with the same cache does not need the tracking store any more.
    offline = PredictionTables(f"http://127.0.0.1:{free_port()}", tmp_path / "cache")
    pd.testing.assert_frame_equal(offline.get(run_id), table)


def test_prefetch_finds_the_tables_by_their_artifact_uris_not_run_by_run(store, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    def by_run_id(*args, **kwargs):
        raise AssertionError("a table was looked up by its run id")

    ids = [store.runs[name] for name in ("alpha-alpha-200", "base-alpha-200", "base-beta-100")]
    expected = [PredictionTables(store.uri, tmp_path / "one-by-one").get(run_id) for run_id in ids]
    monkeypatch.setattr(MlflowClient, "get_run", by_run_id)
    monkeypatch.setattr(MlflowClient, "download_artifacts", by_run_id)
    tables = PredictionTables(store.uri, tmp_path / "cache")
    tables.prefetch(ids)
    for run_id, table in zip(ids, expected):
        if table is None:
            assert tables.get(run_id) is None
        else:
            pd.testing.assert_frame_equal(tables.get(run_id), table)
    assert sum(table is not None for table in expected) >= 2


def test_unreachable_or_missing_stores_fail_fast(tmp_path):
    with pytest.raises(TrackingError, match="cannot reach the tracking server at http://127"):
        check_tracking_uri(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TrackingError, match="no tracking database"):
        check_tracking_uri(f"sqlite:///{tmp_path / 'absent.db'}")


def test_server_and_sqlite_file_read_the_same(sqlite_store, server_store):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DuplicateRunsWarning)
        through_server = load_eval_runs(EXPERIMENT, server_store.uri)
        from_file = load_eval_runs(EXPERIMENT, sqlite_store.uri)
    pd.testing.assert_frame_equal(through_server, from_file)
