"""Eval cells that resume: a cell killed mid-way is finished by the next run, in the same run, scoring only the rest."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from amuro.commands.pretrain_eval import pretrain_eval
from amuro.core import tracking
from amuro.core.settings import EvalSettings, PretrainEvalSettings
from amuro.scoring.resume import ARTIFACT

ITEMS = 16
SETTINGS = dict(shots=1, max_examples=ITEMS, batch_size=1, max_new_tokens=30, stop="none", bootstrap=200)


def cfg(experiment, small_series, settings=SETTINGS):
    return PretrainEvalSettings(
        experiment=experiment,
        model=small_series,
        checkpoints="1",
        datasets="synth-summary",
        eval=EvalSettings(**settings),
    )


def stop_after_first_save(
    small_series, tmp_path, uri, *, experiment="kill", stop=signal.SIGKILL, after=0.0, settings=SETTINGS
):
    """Start the cell in a process of its own and send it ``stop`` ``after`` seconds past its first save of answers
    to its run; returns the process's exit code and the answers its run holds then."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    command = [
        sys.executable,
        "-m",
        "amuro",
        "pretrain-eval",
        "--experiment",
        experiment,
        "--model",
        small_series,
        "--checkpoints",
        "1",
        "--datasets",
        "synth-summary",
        *[part for name, value in settings.items() for part in (f"--{name.replace('_', '-')}", str(value))],
    ]
    process = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline, saved = time.time() + 300, []
    while time.time() < deadline and process.poll() is None:
        saved = list(Path(tmp_path).glob(f"mlruns/*/*/artifacts/{ARTIFACT}"))
        if saved:
            time.sleep(after)
            os.killpg(process.pid, stop)
            break
        time.sleep(0.02)
    code = process.wait(timeout=60)
    assert saved, "the cell ended before any answer was saved"
    time.sleep(0.5)  # the artifact write that was seen has completed (the local store writes it whole)
    return code, json.loads(saved[0].read_text())["values"]


@pytest.mark.slow
def test_killed_cell_resumes_in_the_same_run_and_scores_only_the_rest(tracking_uri, small_series, tmp_path):
    started = time.time()
    code, saved = stop_after_first_save(small_series, tmp_path, tracking_uri)
    assert code == -signal.SIGKILL, "the cell ended before it was killed"
    print(f"killed after {time.time() - started:.1f} s with {len(saved)} answers saved")
    assert 0 < len(saved) < ITEMS
    client = MlflowClient()
    experiment_id = tracking.connect("kill")
    [killed] = client.search_runs([experiment_id], "tags.`amuro.kind` = 'eval'")
    assert killed.info.status == "RUNNING"

    started = time.time()
    pretrain_eval(cfg("kill", small_series))
    print(f"resumed in {time.time() - started:.1f} s")
    [resumed] = client.search_runs([experiment_id], "tags.`amuro.kind` = 'eval'")
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    metrics = resumed.data.metrics
    assert metrics["answers_resumed"] == len(saved) and metrics["answers_computed"] == ITEMS - len(saved)
    assert metrics["n"] == ITEMS

    pretrain_eval(cfg("whole", small_series))
    [whole] = client.search_runs([tracking.connect("whole")], "tags.`amuro.kind` = 'eval'")
    assert whole.data.metrics["answers_resumed"] == 0 and whole.data.metrics["answers_computed"] == ITEMS
    for name in ("score", "score_ci_low", "score_ci_high", "score_se"):
        assert metrics[name] == whole.data.metrics[name], name
    tables = []
    for experiment, run in (("kill", resumed), ("whole", whole)):
        mlflow.set_experiment(experiment)
        tables.append(mlflow.load_table("predictions.json", run_ids=[run.info.run_id]))
    assert list(tables[0].item_id) == list(tables[1].item_id)
    assert list(tables[0].prediction) == list(tables[1].prediction)


def test_terminated_cell_saves_what_it_scored_and_ends_killed(tracking_uri, small_series, tmp_path):
    """SIGTERM (a scheduler's time limit or preemption) ends the cell as Ctrl-C does: the answers scored since
    the last save are saved, the run is KILLED at once, and the next run finishes it from there."""
    items = 12 * ITEMS  # a cell alone on one thread scores about 70 a second: SIGTERM comes well before the end
    settings = {**SETTINGS, "max_examples": items}
    code, saved = stop_after_first_save(
        small_series, tmp_path, tracking_uri, experiment="term", stop=signal.SIGTERM, after=0.5, settings=settings
    )
    assert code == 1, "the cell did not end as an interrupted command"
    assert 1 < len(saved) < items  # the first save holds one answer (batches of one); the rest came with SIGTERM
    client = MlflowClient()
    experiment_id = tracking.connect("term")
    [stopped] = client.search_runs([experiment_id], "tags.`amuro.kind` = 'eval'")
    assert stopped.info.status == "KILLED"

    pretrain_eval(cfg("term", small_series, settings))
    [resumed] = client.search_runs([experiment_id], "tags.`amuro.kind` = 'eval'")
    assert resumed.info.run_id == stopped.info.run_id and resumed.info.status == "FINISHED"
    assert resumed.data.metrics["answers_resumed"] == len(saved)
    assert resumed.data.metrics["answers_computed"] == items - len(saved)


def test_a_cell_resumed_after_logging_its_predictions_logs_each_item_once(tracking_uri, small_series, monkeypatch):
    """The attempt that logged predictions.json dies before its run ends; the next attempt keeps that table
    (mlflow.log_table would append a second copy of every item)."""
    logged = mlflow.log_table

    def log_then_die(*args, **kwargs):
        logged(*args, **kwargs)
        raise KeyboardInterrupt

    settings = {**SETTINGS, "max_examples": 4}
    monkeypatch.setattr("amuro.scoring.cells.mlflow.log_table", log_then_die)
    try:
        pretrain_eval(cfg("twice", small_series, settings))
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr("amuro.scoring.cells.mlflow.log_table", logged)
    pretrain_eval(cfg("twice", small_series, settings))
    [run] = MlflowClient().search_runs([tracking.connect("twice")], "tags.`amuro.kind` = 'eval'")
    assert run.info.status == "FINISHED"
    mlflow.set_experiment("twice")
    table = mlflow.load_table("predictions.json", run_ids=[run.info.run_id])
    assert len(table) == 4 and table["item_id"].is_unique
