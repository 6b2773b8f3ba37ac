"""A sweep cell past its time limit (--cell-timeout) is killed and ends as a failed cell, its run FAILED with the
reason, as a cell killed by a signal; the Ray engine's workers start with the sweep's runtime environment."""

import os
import sys
import time

import mlflow
from mlflow.tracking import MlflowClient

from amuro.commands.sweep_engine import run_logged_cell, timed_out_reason
from amuro.core import tracking
from amuro.core.ownership import CELL_ENV
from amuro.core.settings import SweepSettings

LIMIT = 20  # seconds: room for the cell to import MLflow and open its run on a busy machine

SLOW_CELL = """
import time
from amuro.core import tracking
experiment_id = tracking.connect("timeouts")
def work(run):
    print("working in", run.run_id, flush=True)
    time.sleep(600)
tracking.run_once(experiment_id, "k" * 64, tracking.contract_tags(kind="finetune"), "slow cell", work)
"""


def test_a_cell_past_its_time_limit_is_killed_and_its_run_ends_failed_with_the_reason(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        experiment_id = tracking.connect("timeouts")
        parent = MlflowClient().create_run(experiment_id, run_name="sweep").info.run_id
        env = {
            **os.environ,
            "MLFLOW_EXPERIMENT_NAME": "timeouts",
            tracking.PARENT_ENV: parent,
            CELL_ENV: f"{parent}/slow",
        }
        start = time.time()
        outcome = run_logged_cell([sys.executable, "-c", SLOW_CELL], env, tmp_path / "slow.log", [], timeout=LIMIT)
        assert LIMIT <= time.time() - start < LIMIT + 30
        assert "working in" in (tmp_path / "slow.log").read_text(), "the cell had opened its run"
        assert outcome.code == 1 and outcome.last_line == timed_out_reason(LIMIT)  # failed, and no Ray retry
        assert outcome.last_line.startswith(f"ran past its time limit (--cell-timeout {LIMIT} s) and was killed")

        [run] = MlflowClient().search_runs([experiment_id], "tags.`amuro.kind` = 'finetune'")
        assert run.info.status == "FAILED" and run.data.tags["amuro.error"] == timed_out_reason(LIMIT)
        assert [a.path for a in MlflowClient().list_artifacts(run.info.run_id, "logs")] == ["logs/slow.log"]
    finally:
        mlflow.set_tracking_uri(None)


def test_cell_timeout_is_a_setting_outside_the_run_key():
    timed = SweepSettings(cell_timeout=3600)
    assert timed.key_settings() == SweepSettings().key_settings()
    assert "cell_timeout" in timed.to_dict()


def test_ray_workers_start_with_the_offline_flags_caches_and_tracking_server(monkeypatch, tmp_path):
    from amuro.commands.sweep_ray import runtime_env

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("AMURO_HOME", str(tmp_path / "amuro"))
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    env = runtime_env("http://amuro:secret@tracking:5000")["env_vars"]
    assert env == {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "AMURO_HOME": str(tmp_path / "amuro"),
        "MLFLOW_TRACKING_URI": "http://tracking:5000",
    }
