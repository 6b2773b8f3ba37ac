"""crosseval: relations and base-checkpoint tags on tuned cells, reuse, one model load, bad input."""

import os
import time

import mlflow
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

import amuro.models.targets
from amuro.cli import main
from amuro.commands.crosseval import crosseval
from amuro.core.local_server import free_port
from amuro.core.settings import CrossevalSettings, EvalSettings
from amuro.models.series import local_series

SETTINGS = dict(
    experiment="x",
    datasets="synth-nli,synth-qgen-ood",
    formats="default,io",
    eval=EvalSettings(max_examples=6, bootstrap=200),
)


@pytest.fixture(scope="module")
def tuned(small_series, tmp_path_factory):
    """A store holding one short finetune run of the small series' second checkpoint."""
    from amuro.commands.finetune import finetune
    from amuro.core.settings import FinetuneSettings
    from amuro.core.train_settings import TrainSettings

    folder = tmp_path_factory.mktemp("crosseval-store")
    uri = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    previous = os.getcwd()
    os.chdir(folder)
    revision = local_series(small_series).checkpoints[1].revision
    run_id = finetune(
        FinetuneSettings(
            experiment="x",
            model=str(small_series),
            checkpoint=revision,
            dataset="synth-nli",
            train=TrainSettings(epochs=1, max_train_examples=32),
            evaluate=False,
        )
    )
    mlflow.set_tracking_uri(None)
    os.chdir(previous)
    return uri, run_id


@pytest.fixture
def store(tuned, monkeypatch):
    uri, run_id = tuned
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield run_id
    mlflow.set_tracking_uri(None)


def _evals(**filters):
    client = MlflowClient()
    experiment_id = client.get_experiment_by_name("x").experiment_id
    query = " and ".join(["tags.`amuro.kind` = 'eval'", *(f"tags.`amuro.{k}` = '{v}'" for k, v in filters.items())])
    return client.search_runs([experiment_id], query, max_results=1000)


def test_tuned_cells_carry_relation_and_base_tags_and_are_reused(store, small_series, monkeypatch, capsys):
    loads = []
    real = amuro.models.targets.load_tuned
    monkeypatch.setattr(amuro.models.targets, "load_tuned", lambda run_id, **kw: loads.append(run_id) or real(run_id))
    ids = crosseval(CrossevalSettings(runs=store, **SETTINGS))
    assert loads == [store]
    finetune_run = MlflowClient().get_run(store)
    base = local_series(small_series).checkpoints[1]
    runs = _evals(source_run_id=store)
    assert sorted(r.info.run_id for r in runs) == sorted(ids) and len(ids) == 4
    for run in runs:
        tags = run.data.tags
        assert (
            tags["amuro.relation"]
            == {"synth-nli": "in-domain", "synth-qgen-ood": "cross-task"}[tags["amuro.eval_dataset"]]
        )
        assert (tags["amuro.step"], tags["amuro.tokens"], tags["amuro.revision"]) == (
            str(base.step),
            str(base.tokens),
            base.revision,
        )
        assert tags["amuro.tuning"] == "sft" and tags["amuro.train_dataset"] == "synth-nli"
        assert tags["amuro.model"] == finetune_run.data.tags["amuro.model"]
        assert tags["amuro.task"] in ("nli", "qgen") and tags["amuro.shots"] == "4"
        parent = MlflowClient().get_run(tags["mlflow.parentRunId"])
        assert parent.data.tags["amuro.entry_point"] == "crosseval"
        assert {"score", "score_ci_low", "score_ci_high", "score_se", "n"} <= set(run.data.metrics)
    assert "no base pretrain-eval partner" in capsys.readouterr().out

    loads.clear()
    again = crosseval(CrossevalSettings(runs="all", **SETTINGS))
    assert sorted(again) == sorted(ids) and loads == []
    assert len(_evals(source_run_id=store)) == 4


def test_with_base_scores_missing_partners(store, small_series):
    crosseval(CrossevalSettings(runs=store, with_base=True, **dict(SETTINGS, formats="default")))
    base = local_series(small_series).checkpoints[1]
    partners = _evals(tuning="none", step=str(base.step))
    assert {(r.data.tags["amuro.eval_dataset"], r.data.tags["amuro.relation"]) for r in partners} == {
        ("synth-nli", "base"),
        ("synth-qgen-ood", "base"),
    }


def _invoke(*args):
    result = CliRunner().invoke(main, ["crosseval", "--experiment", "x", "--max-examples", "4", *args])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    return result.output


def test_bad_run_ids(store, small_series):
    assert "run 0123456789abcdef0123456789abcdef does not exist" in _invoke(
        "--runs", "0123456789abcdef0123456789abcdef"
    )
    client = MlflowClient()
    experiment_id = client.get_experiment_by_name("x").experiment_id
    pretrain_like = client.create_run(experiment_id, tags={"amuro.kind": "pretrain"}).info.run_id
    client.set_terminated(pretrain_like)
    assert f"run {pretrain_like} is a pretrain run, not a finetune run" in _invoke("--runs", pretrain_like)
    empty = client.create_run(
        experiment_id,
        tags={
            "amuro.kind": "finetune",
            "amuro.model": "m",
            "amuro.step": "1",
            "amuro.tuning": "sft",
            "amuro.train_dataset": "synth-nli",
        },
    ).info.run_id
    client.set_terminated(empty)
    before = len(_evals())
    assert f"finetune run {empty} has no model artifact" in _invoke("--runs", f"{store},{empty}")
    assert len(_evals()) == before
    client.delete_run(empty)


def test_unreachable_tracking_server_fails_fast():
    port = free_port()
    started = time.time()
    result = CliRunner().invoke(main, ["--tracking-uri", f"http://127.0.0.1:{port}", "crosseval"])
    assert result.exit_code != 0 and time.time() - started < 30
    assert f"tracking server http://127.0.0.1:{port} is unreachable" in result.output
    mlflow.set_tracking_uri(None)


def test_instruction_tuned_models_get_the_readable_multiple_choice_suites(tmp_path, monkeypatch):
    import huggingface_hub.constants
    from hubdata import FIXTURES, write_hub_copy

    from amuro.commands.crosseval import _cells
    from amuro.data import get, relation

    monkeypatch.setenv("AMURO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    features, splits = FIXTURES["arc_easy"]
    write_hub_copy(tmp_path / "arc_easy", get("arc_easy"), splits, features)
    cfg = CrossevalSettings(experiment="x", datasets="synth-nli", formats="all")
    tuned_it = {(spec.name, fmt) for spec, fmt in _cells(cfg, "it", [])}
    assert ("arc_easy", "default") in tuned_it and not {"boolq", "hellaswag"} & {name for name, _ in tuned_it}
    assert {spec.name for spec, _ in _cells(cfg, "sft", [])} == {"synth-nli"}
    assert relation("tulu_v2", "arc_easy") == "in-domain"
