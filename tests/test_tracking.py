import os
import subprocess
import sys

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from amuro.core import tracking
from amuro.core.errors import UserError
from amuro.core.local_server import free_port


def test_contract_tags_are_plain_strings():
    tags = tracking.contract_tags(kind="eval", step=342000, tokens=None, shots=4.0, seed=0)
    assert tags == {
        "amuro.kind": "eval",
        "amuro.step": "342000",
        "amuro.tokens": "",
        "amuro.shots": "4",
        "amuro.seed": "0",
    }
    with pytest.raises(ValueError):
        tracking.contract_tags(colour="red")
    beside = tracking.contract_tags(kind="eval", protocol="study", train_seed=None)
    assert beside == {"amuro.kind": "eval", "amuro.protocol": "study", "amuro.train_seed": ""}
    assert tracking.contract_tags(train_seed=3) == {tracking.Tag.TRAIN_SEED: "3"}


def test_run_key_is_canonical():
    a = tracking.run_key("eval", {"x": 1, "y": "b"})
    assert a == tracking.run_key("eval", {"y": "b", "x": 1})
    assert a != tracking.run_key("eval", {"x": 2, "y": "b"})
    assert a != tracking.run_key("finetune", {"x": 1, "y": "b"})


def _cell(experiment_id, key, body=lambda: None):
    return tracking.run_once(experiment_id, key, tracking.contract_tags(kind="eval"), "cell", lambda cell: body())


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

    stale = client.create_run(
        experiment_id,
        tags={
            "amuro.run_key": "k2",
            tracking.HOST_TAG: __import__("socket").gethostname(),
            tracking.PID_TAG: str(_dead_pid()),
            tracking.PID_START_TAG: f"{psutil.Process().create_time():.2f}",
        },
    )
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
    import time

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    mlflow.set_tracking_uri(uri)
    try:
        start = time.time()
        with pytest.raises(UserError, match=f"tracking server {uri} is unreachable"):
            tracking.connect("t")
        assert time.time() - start < 30
    finally:
        mlflow.set_tracking_uri(None)


def test_tag_names_are_the_contract():
    short = {name.lower(): value for name, value in vars(tracking.Tag).items() if name.isupper()}
    assert all(short[name] == "amuro." + name for name in tracking.CONTRACT_TAGS)
    assert len(set(short.values())) == len(short)
    assert all(value.startswith("amuro.") for value in short.values() if value != tracking.Tag.PARENT_RUN_ID)


def test_search_quotes_values_and_finds_by_tag(tracking_uri):
    assert tracking.tag_filter({tracking.Tag.KIND: "eval", tracking.Tag.STEP: 400}, status="FINISHED") == (
        "tags.`amuro.kind` = 'eval' and tags.`amuro.step` = '400' and attributes.status = 'FINISHED'"
    )
    assert tracking.quoted("it's") == '"it\'s"'
    with pytest.raises(UserError, match="both kinds of quote"):
        tracking.quoted('it\'s "x"')
    experiment_id = tracking.connect("t")
    client = MlflowClient()
    odd = client.create_run(experiment_id, tags={tracking.Tag.MODEL: "o'brien/model", tracking.Tag.KIND: "eval"})
    client.set_terminated(odd.info.run_id)
    client.create_run(experiment_id, tags={tracking.Tag.MODEL: "other", tracking.Tag.KIND: "eval"})
    found = tracking.search_runs(experiment_id, {tracking.Tag.MODEL: "o'brien/model"}, status="FINISHED")
    assert [r.info.run_id for r in found] == [odd.info.run_id]
    assert len(tracking.search_runs(experiment_id, {tracking.Tag.KIND: "eval"})) == 2


def test_find_finished_finds_by_key(tracking_uri):
    experiment_id = tracking.connect("t")
    first = _cell(experiment_id, "k5")
    assert tracking.find_finished(experiment_id, "k5").run_id == first.run_id
    assert tracking.find_finished(experiment_id, "other") is None


def test_entry_point_notes_the_launcher_of_mlflow_run(tracking_uri, monkeypatch):
    launcher_experiment = tracking.connect("launcher")
    launcher = MlflowClient().create_run(launcher_experiment).info.run_id
    monkeypatch.setenv(tracking.LAUNCHER_ENV, launcher)
    with tracking.entry_point("pretrain", "work") as invocation:
        assert tracking.LAUNCHER_ENV not in os.environ and invocation.launcher == launcher
        assert invocation.experiment_id == mlflow.get_experiment_by_name("work").experiment_id
        with tracking.tracked_run(invocation.experiment_id, "k6", {}, "result") as cell:
            pass
        invocation.result_run_id = cell.run_id
    tags = MlflowClient().get_run(launcher).data.tags
    assert tags[tracking.Tag.RESULT_RUN_ID] == cell.run_id and tags[tracking.Tag.KIND] == "group"
    assert tags[tracking.Tag.ENTRY_POINT] == "pretrain"


def test_entry_point_group_is_the_launcher_in_the_same_experiment(tracking_uri, monkeypatch):
    experiment_id = tracking.connect("work")
    launcher = MlflowClient().create_run(experiment_id).info.run_id
    monkeypatch.setenv(tracking.LAUNCHER_ENV, launcher)
    with tracking.entry_point("crosseval", "work") as invocation:
        with invocation.group("g1", "group") as parent:
            assert parent == launcher
    tags = MlflowClient().get_run(launcher).data.tags
    assert (tags[tracking.Tag.KIND], tags[tracking.Tag.ENTRY_POINT], tags[tracking.Tag.RUN_KEY]) == (
        "group",
        "crosseval",
        "g1",
    )
    assert tracking.Tag.RESULT_RUN_ID not in tags


def test_run_searches_page_past_any_count(tracking_uri, monkeypatch):
    from amuro.core import runsearch

    experiment_id = tracking.connect("paging")
    client = mlflow.MlflowClient()
    made = {client.create_run(experiment_id, tags={"amuro.kind": "eval"}).info.run_id for _ in range(5)}
    monkeypatch.setattr(runsearch, "PAGE_SIZE", 2)
    assert {r.info.run_id for r in tracking.search_runs(experiment_id, {"amuro.kind": "eval"})} == made
    assert len(tracking.search_runs(experiment_id, {"amuro.kind": "eval"}, max_results=3)) == 3
