"""Ownership any host can judge: heartbeats, take-over of dead owners, waiting on live ones, race-free claims."""

import os
import subprocess
import sys
import threading
import time
from collections import Counter

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from amuro.core import ownership, tracking


def _other_host_run(experiment_id, key, heartbeat_age):
    return MlflowClient().create_run(
        experiment_id,
        tags={
            "amuro.run_key": key,
            ownership.HOST_TAG: "node-b.cluster",
            ownership.PID_TAG: "4242",
            ownership.PID_START_TAG: "1700000000.00",
            ownership.CLAIM_TAG: "won",
            ownership.HEARTBEAT_TAG: str(int(time.time() - heartbeat_age)),
        },
    )


@pytest.mark.parametrize("resumable", [True, False])
def test_running_run_of_another_host_with_a_stale_heartbeat_is_taken_over(tracking_uri, resumable):
    experiment_id = tracking.connect("t")
    dead = _other_host_run(experiment_id, "k", heartbeat_age=ownership.STALE_SECONDS + 30)
    with tracking.tracked_run(experiment_id, "k", {}, "cell", resumable=resumable) as cell:
        assert not cell.reused and cell.resumed == resumable
        mlflow.log_metric("score", 1.0)
    client = MlflowClient()
    if resumable:
        assert cell.run_id == dead.info.run_id
        run = client.get_run(cell.run_id)
        assert run.info.status == "FINISHED" and run.data.tags[ownership.HOST_TAG] != "node-b.cluster"
    else:
        assert cell.run_id != dead.info.run_id
        old = client.get_run(dead.info.run_id)
        assert old.info.status == "FAILED" and "node-b.cluster" in old.data.tags[ownership.ERROR_TAG]
        assert client.get_run(cell.run_id).info.status == "FINISHED"
    assert len(client.search_runs([experiment_id])) == (1 if resumable else 2)  # lost claims are deleted


def test_running_run_of_another_host_with_a_fresh_heartbeat_is_waited_on(tracking_uri, monkeypatch, capsys):
    monkeypatch.setattr(ownership, "WAIT_SECONDS", 0.2)
    experiment_id = tracking.connect("t")
    live = _other_host_run(experiment_id, "k", heartbeat_age=5)
    outcome = {}

    def claim():
        outcome["cell"] = tracking.run_once(
            experiment_id, "k", {}, "cell", outcome.setdefault("worked", []).append, resumable=True
        )

    waiter = threading.Thread(target=claim)
    waiter.start()
    time.sleep(2)
    assert waiter.is_alive() and "cell" not in outcome, "a live owner of another host was not waited on"
    client = MlflowClient()
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == [live.info.run_id]
    client.set_terminated(live.info.run_id, "FINISHED")
    waiter.join(timeout=30)
    assert outcome["cell"].reused and outcome["cell"].run_id == live.info.run_id and outcome["worked"] == []
    with pytest.raises(tracking.FinishedElsewhere):  # the context alone never runs its body for a finished key
        with tracking.tracked_run(experiment_id, "k", {}, "cell"):
            raise AssertionError("the body ran for a finished key")
    out = capsys.readouterr().out
    assert f"waiting for run {live.info.run_id}" in out and "node-b.cluster" in out


def test_heartbeat_is_renewed_while_the_owner_works(tracking_uri, monkeypatch):
    monkeypatch.setattr(ownership, "RENEW_SECONDS", 0.3)
    experiment_id = tracking.connect("t")
    with tracking.tracked_run(experiment_id, "k", {}, "cell") as cell:
        first = renewed = MlflowClient().get_run(cell.run_id).data.tags[ownership.HEARTBEAT_TAG]
        deadline = time.monotonic() + 30
        while renewed == first and time.monotonic() < deadline:
            time.sleep(0.1)
            renewed = MlflowClient().get_run(cell.run_id).data.tags[ownership.HEARTBEAT_TAG]
    assert int(renewed) > int(first)
    assert MlflowClient().get_run(cell.run_id).data.tags[ownership.CLAIM_TAG] == "won"


CLAIMANT = """
import pathlib, sys, time
import mlflow
from amuro.core import tracking
mlflow.set_tracking_uri(sys.argv[1])
experiment_id = tracking.connect("race")
pathlib.Path(sys.argv[2] + ".ready").touch()
while not pathlib.Path(sys.argv[2]).exists():
    time.sleep(0.01)
cell = tracking.run_once(experiment_id, "same-cell", {"amuro.kind": "eval"}, "cell",
                        lambda cell: (time.sleep(1.0), mlflow.log_metric("score", 1.0)), say=lambda _: None)
print("reused" if cell.reused else "owned", cell.run_id)
"""


def test_claims_made_at_the_same_moment_on_one_server_run_the_cell_once(mlflow_server, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    go = [tmp_path / f"go-{n}" for n in range(4)]
    claimants = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMANT, mlflow_server, str(path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in go
    ]
    deadline = time.monotonic() + 120
    while not all(path.with_suffix(".ready").exists() for path in go) and time.monotonic() < deadline:
        time.sleep(0.05)
    for path in go:  # every claimant is connected and waiting: let them all go at once
        path.touch()
    outputs = [c.communicate(timeout=120) for c in claimants]
    assert all(c.returncode == 0 for c in claimants), [err[-2000:] for _, err in outputs]
    last_lines = [out.strip().splitlines()[-1].split() for out, _ in outputs]
    assert Counter(outcome for outcome, _ in last_lines) == {"owned": 1, "reused": 3}
    assert len({run_id for _, run_id in last_lines}) == 1
    mlflow.set_tracking_uri(mlflow_server)
    try:
        client = MlflowClient()
        runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
    finally:
        mlflow.set_tracking_uri(None)
    assert [r.info.status for r in runs] == ["FINISHED"]


def test_an_owner_whose_run_was_taken_over_stops_without_logging_its_results(tracking_uri, small_series, tmp_path):
    """A slow server let another process judge the owner dead and take its cell over: the first owner, at its
    next look, stops (exit 75) without logging anything, and the cell ends FINISHED once, by the taker."""
    from amuro.commands.pretrain_eval import pretrain_eval
    from amuro.core.settings import EvalSettings, PretrainEvalSettings

    settings = dict(shots=1, max_examples=16, batch_size=1, max_new_tokens=30, stop="none", bootstrap=200)
    command = [
        sys.executable,
        "-m",
        "amuro",
        "pretrain-eval",
        "--experiment",
        "fenced",
        "--model",
        small_series,
        "--checkpoints",
        "1",
        "--datasets",
        "synth-summary",
        *[part for name, value in settings.items() for part in (f"--{name.replace('_', '-')}", str(value))],
    ]
    first = subprocess.Popen(
        command,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    experiment_id = tracking.connect("fenced")
    query = "tags.`amuro.kind` = 'eval' and tags.`amuro.claim` = 'won' and attributes.status = 'RUNNING'"
    deadline, owned = time.monotonic() + 300, []
    while not owned:
        assert first.poll() is None and time.monotonic() < deadline, "the cell never started"
        owned = MlflowClient().search_runs([experiment_id], query)
        time.sleep(0.05)
    [cell] = owned
    client = MlflowClient()
    client.set_tag(cell.info.run_id, ownership.ERROR_TAG, "taken over: the owner's heartbeat went stale")
    client.set_terminated(cell.info.run_id, "FAILED")  # what a process judging the owner dead does
    out, err = first.communicate(timeout=300)
    assert first.returncode == ownership.FENCED_EXIT, err[-2000:]
    assert "stopped without logging results: another owner took the run over" in err
    fenced = client.get_run(cell.info.run_id)
    assert "score" not in fenced.data.metrics
    assert "predictions.json" not in {a.path for a in client.list_artifacts(cell.info.run_id)}

    pretrain_eval(
        PretrainEvalSettings(
            experiment="fenced",
            model=small_series,
            checkpoints="1",
            datasets="synth-summary",
            eval=EvalSettings(**settings),
        )
    )
    runs = client.search_runs([experiment_id], "tags.`amuro.kind` = 'eval'")
    assert [(r.info.run_id, r.info.status) for r in runs] == [(cell.info.run_id, "FINISHED")]
    mlflow.set_experiment("fenced")
    table = mlflow.load_table("predictions.json", run_ids=[cell.info.run_id])
    assert len(table) == 16 and table["item_id"].is_unique
