"""Eval cells that resume: a cell killed mid-way is finished by the next run, in the same run, scoring only the rest."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from amuro.commands.pretrain_eval import pretrain_eval
from amuro.core import tracking
from amuro.core.settings import EvalSettings, PretrainEvalSettings
from amuro.scoring.resume import ARTIFACT

ITEMS = 16
SETTINGS = dict(shots=1, max_examples=ITEMS, batch_size=1, max_new_tokens=30, stop="none", bootstrap=200)


def cfg(experiment, small_series):
    return PretrainEvalSettings(experiment=experiment, model=small_series, checkpoints="1", datasets="synth-summary",
                                eval=EvalSettings(**SETTINGS))


def kill_after_first_save(small_series, tmp_path, uri):
    """Start the cell in a process of its own and SIGKILL it once its first answers are saved to its run."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    command = [sys.executable, "-m", "amuro", "pretrain-eval", "--experiment", "kill", "--model", small_series,
               "--checkpoints", "1", "--datasets", "synth-summary",
               *[part for name, value in SETTINGS.items() for part in (f"--{name.replace('_', '-')}", str(value))]]
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        saved = list(Path(tmp_path).glob(f"mlruns/*/*/artifacts/{ARTIFACT}"))
        if saved:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the cell ended before any answer was saved"
    time.sleep(0.5)   # the artifact write that was seen has completed (the local store writes it whole)
    return json.loads(saved[0].read_text())["values"]


def test_killed_cell_resumes_in_the_same_run_and_scores_only_the_rest(tracking_uri, small_series, tmp_path):
    started = time.time()
    saved = kill_after_first_save(small_series, tmp_path, tracking_uri)
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
