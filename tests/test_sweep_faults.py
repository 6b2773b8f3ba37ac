"""Faults a long grid meets: a cell killed by the out-of-memory killer, resumed by the next sweep, which also reuses
the fine-tunes the first one finished."""

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
def test_a_killed_cell_is_one_failed_cell_and_the_rerun_in_a_new_format_resumes_it_and_reuses_the_other(
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

    # The rerun, in one more format, resumes the killed fine-tune in its run, reuses the finished one and scores
    # both in each format (a fine-tune's key holds no eval setting).
    again = subprocess.run(
        [*argv, "--formats", "default,instruct"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert again.returncode == 0, again.stderr[-3000:]
    runs = _runs(uri)
    finetunes = _by_dataset(runs, "finetune")
    assert len(finetunes) == 2 and {r.info.status for r in finetunes.values()} == {"FINISHED"}
    assert finetunes["synth-nli"].info.run_id == killed.info.run_id  # resumed, not redone
    sweeps = sorted((r for r in runs if r.data.tags.get("amuro.kind") == "sweep"), key=lambda r: r.info.start_time)
    assert len(sweeps) == 2  # a new format is a new sweep, whose crossevals find the fine-tunes it took over
    for finetune in finetunes.values():
        assert finetune.data.tags["mlflow.parentRunId"] == sweeps[0].info.run_id
        assert sweeps[-1].data.tags[f"amuro.reused.{finetune.info.run_id}"] == "finetune"
    tuned = {
        (r.data.tags["amuro.train_dataset"], r.data.tags["amuro.format"])
        for r in runs
        if r.data.tags.get("amuro.kind") == "eval"
        and r.info.status == "FINISHED"
        and r.data.tags["amuro.tuning"] != "none"
    }
    assert tuned == {(d, f) for d in ("synth-nli", "synth-paraphrase") for f in ("default", "instruct")}
