"""Faults a long grid meets: a cell killed by the out-of-memory killer, resumed by the next sweep, and a later
sweep over the fine-tunes an earlier one made."""

import os
import signal
import sqlite3
import subprocess
import time

import pytest
from sweeps import _env, _runs, _sweep_argv

KILLED = "killed by signal 9 (SIGKILL, out of memory?)"
TRAINING_PID = """
SELECT pid.value FROM runs
JOIN tags kind ON kind.run_uuid = runs.run_uuid AND kind.key = 'amuro.kind' AND kind.value = 'finetune'
JOIN tags data ON data.run_uuid = runs.run_uuid AND data.key = 'amuro.train_dataset' AND data.value = ?
JOIN tags claim ON claim.run_uuid = runs.run_uuid AND claim.key = 'amuro.claim' AND claim.value = 'won'
JOIN tags pid ON pid.run_uuid = runs.run_uuid AND pid.key = 'amuro.pid'
WHERE runs.status = 'RUNNING'
"""


def _training_pid(database, dataset: str, sweep, timeout: float = 600) -> int:
    """The process of the running fine-tune on ``dataset``, read straight from the store's file."""
    deadline = time.monotonic() + timeout
    while True:
        assert sweep.poll() is None and time.monotonic() < deadline, "the fine-tune never started"
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
                found = db.execute(TRAINING_PID, (dataset,)).fetchone()
        except sqlite3.OperationalError:  # no tables yet, or a write in progress
            found = None
        if found:
            return int(found[0])
        time.sleep(0.2)


def _by_dataset(runs, kind):
    return {r.data.tags["amuro.train_dataset"]: r for r in runs if r.data.tags.get("amuro.kind") == kind}


@pytest.mark.slow
def test_a_killed_cell_is_one_failed_cell_the_rerun_finishes_it_and_a_later_sweep_reuses_its_fine_tunes(
    small_series, tmp_path
):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = _env(tmp_path, uri)
    argv = _sweep_argv(
        small_series,
        "--checkpoints",
        "1",
        "--workers",
        "2",
        "--eval-datasets",
        "synth-nli",
        "--train-datasets",
        "synth-nli,synth-paraphrase",
        "--max-train-examples",
        "400",
    )
    sweep = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.kill(_training_pid(tmp_path / "mlflow.db", "synth-nli", sweep), signal.SIGKILL)
    out, err = sweep.communicate(timeout=900)
    assert sweep.returncode != 0 and "Traceback" not in err, err[-3000:]
    assert "finetune small@step" in err and KILLED in err and "2 of 6 sweep cells failed" in err, err[-2000:]

    runs = _runs(uri)
    killed = _by_dataset(runs, "finetune")["synth-nli"]
    assert killed.info.status == "FAILED" and killed.data.tags["amuro.error"] == KILLED
    other = _by_dataset(runs, "finetune")["synth-paraphrase"]
    assert other.info.status == "FINISHED"  # the grid went on beside the killed cell
    tuned = [
        r
        for r in runs
        if r.data.tags.get("amuro.kind") == "eval"
        and r.info.status == "FINISHED"
        and r.data.tags["amuro.train_dataset"] == "synth-paraphrase"
    ]
    assert tuned, "the crosseval of the other fine-tune did not run"
    sweep_run = next(r for r in runs if r.data.tags.get("amuro.kind") == "sweep")
    assert sweep_run.info.status == "FAILED" and sweep_run.data.metrics["cells_failed"] == 2

    again = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    runs = _runs(uri)
    finetunes = [r for r in runs if r.data.tags.get("amuro.kind") == "finetune"]
    assert len(finetunes) == 2 and {r.info.status for r in finetunes} == {"FINISHED"}
    assert _by_dataset(runs, "finetune")["synth-nli"].info.run_id == killed.info.run_id  # resumed, not redone

    # A later sweep over the same fine-tunes, in one more format, reuses them and scores them in it.
    later = subprocess.run(
        [*argv, "--formats", "default,instruct"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert later.returncode == 0, later.stderr[-3000:]
    runs = _runs(uri)
    sweeps = sorted((r for r in runs if r.data.tags.get("amuro.kind") == "sweep"), key=lambda r: r.info.start_time)
    for finetune in _by_dataset(runs, "finetune").values():
        assert finetune.data.tags["mlflow.parentRunId"] == sweeps[0].info.run_id
        assert sweeps[-1].data.tags[f"amuro.reused.{finetune.info.run_id}"] == "finetune"
    tuned = {
        r.data.tags["amuro.format"]
        for r in runs
        if r.data.tags.get("amuro.kind") == "eval"
        and r.info.status == "FINISHED"
        and r.data.tags["amuro.tuning"] != "none"
    }
    assert tuned == {"default", "instruct"}  # the later sweep scored the reused fine-tunes in its new format
