import subprocess
import sys

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from amuro.core import tracking
from amuro.core.errors import UserError


def test_contract_tags_are_plain_strings():
    tags = tracking.contract_tags(kind="eval", step=342000, tokens=None, shots=4.0, seed=0)
    assert tags == {"amuro.kind": "eval", "amuro.step": "342000", "amuro.tokens": "", "amuro.shots": "4",
                    "amuro.seed": "0"}
    with pytest.raises(ValueError):
        tracking.contract_tags(colour="red")


def test_run_key_is_canonical():
    a = tracking.run_key("eval", {"x": 1, "y": "b"})
    assert a == tracking.run_key("eval", {"y": "b", "x": 1})
    assert a != tracking.run_key("eval", {"x": 2, "y": "b"})
    assert a != tracking.run_key("finetune", {"x": 1, "y": "b"})


def _cell(experiment_id, key, body=lambda: None):
    with tracking.tracked_run(experiment_id, key, tracking.contract_tags(kind="eval"), "cell") as cell:
        if not cell.reused:
            body()
    return cell


def test_finished_run_is_reused(tracking_uri, capsys):
    experiment_id = tracking.connect("t")
    calls = []
    first = _cell(experiment_id, "k1", lambda: calls.append(mlflow.log_metric("score", 0.5)))
    second = _cell(experiment_id, "k1", lambda: calls.append(1))
    assert not first.reused and second.reused and second.run_id == first.run_id
    assert len(calls) == 1
    assert f"reusing finished run {first.run_id}" in capsys.readouterr().out
    run = MlflowClient().get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["amuro.run_key"] == "k1" and run.data.tags["amuro.kind"] == "eval"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_running_run_is_marked_failed_and_redone(tracking_uri):
    experiment_id = tracking.connect("t")
    client = MlflowClient()
    import psutil
    stale = client.create_run(experiment_id, tags={
        "amuro.run_key": "k2", tracking.HOST_TAG: __import__("socket").gethostname(),
        tracking.PID_TAG: str(_dead_pid()), tracking.PID_START_TAG: f"{psutil.Process().create_time():.2f}"})
    cell = _cell(experiment_id, "k2")
    assert not cell.reused and cell.run_id != stale.info.run_id
    assert client.get_run(stale.info.run_id).info.status == "FAILED"
    assert "process died" in client.get_run(stale.info.run_id).data.tags[tracking.ERROR_TAG]
    assert client.get_run(cell.run_id).info.status == "FINISHED"


def test_failure_is_recorded_and_resumable_run_reopened(tracking_uri):
    experiment_id = tracking.connect("t")
    with pytest.raises(RuntimeError):
        with tracking.tracked_run(experiment_id, "k4", {}, "cell", resumable=True):
            raise RuntimeError("boom\nsecond line")
    failed = MlflowClient().search_runs([experiment_id])[0]
    assert failed.info.status == "FAILED" and failed.data.tags[tracking.ERROR_TAG] == "boom"
    with tracking.tracked_run(experiment_id, "k4", {}, "cell", resumable=True) as cell:
        assert cell.resumed and cell.run_id == failed.info.run_id
    assert MlflowClient().get_run(failed.info.run_id).info.status == "FINISHED"


def test_unreachable_server_fails_fast_naming_uri(monkeypatch):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    mlflow.set_tracking_uri(uri)
    try:
        start = time.time()
        with pytest.raises(UserError, match=f"tracking server {uri} is unreachable"):
            tracking.connect("t")
        assert time.time() - start < 30
    finally:
        mlflow.set_tracking_uri(None)
