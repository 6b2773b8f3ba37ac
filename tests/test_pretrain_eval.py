"""pretrain-eval end to end on real tracking stores: contract tags, nesting, reuse, hub series, bad input."""

import json
import shutil
import subprocess
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from hubcache import write_hub_cache
from mlflow.tracking import MlflowClient
from sweeps import mlflow_run, store_env

from amuro import data
from amuro.cli import main
from amuro.commands.pretrain_eval import pretrain_eval
from amuro.core import tracking
from amuro.core.settings import EvalSettings, PretrainEvalSettings
from amuro.data import DatasetSpec
from amuro.models import hub_listing
from amuro.models.series import Checkpoint, local_series

QUICK = dict(max_examples=5, shots=2, bootstrap=100, max_new_tokens=6)


def quick(**changes) -> EvalSettings:
    return EvalSettings(**{**QUICK, **changes})


def eval_runs(experiment="pe"):
    experiment_id = tracking.connect(experiment)
    return MlflowClient().search_runs([experiment_id], "tags.`amuro.kind` = 'eval'", max_results=1000)


def test_cells_are_tagged_nested_referenced_and_reused(tracking_uri, small_series, monkeypatch):
    cfg = PretrainEvalSettings(
        experiment="pe",
        model=small_series,
        checkpoints="2",
        datasets="synth-nli,synth-summary",
        formats="default,io",
        eval=quick(),
    )
    parent = pretrain_eval(cfg)
    runs = eval_runs()
    series = local_series(small_series)
    chosen = {c.revision: c for c in series.select("2")}
    assert len(runs) == 2 * 2 * 2
    for run in runs:
        tags = run.data.tags
        ckpt = chosen[tags["amuro.revision"]]
        spec = data.get(tags["amuro.eval_dataset"])
        assert {"amuro." + t for t in tracking.CONTRACT_TAGS} - {"amuro.run_key"} <= set(tags)
        assert (tags["amuro.kind"], tags["amuro.tuning"], tags["amuro.train_dataset"], tags["amuro.relation"]) == (
            "eval",
            "none",
            "none",
            "base",
        )
        assert tags["amuro.model"] == "small" and tags["amuro.step"] == str(ckpt.step)
        assert tags["amuro.tokens"] == str(ckpt.tokens) and tags["amuro.shots"] == "2"
        assert tags["amuro.task"] == spec.task and tags["amuro.metric"] == spec.metric
        assert tags["amuro.source_run_id"] == ckpt.source_run_id and tags["amuro.seed"] == "0"
        assert tags["amuro.artifact_uri"] == f"runs:/{ckpt.source_run_id}/series/{ckpt.revision}"
        assert tags["mlflow.parentRunId"] == parent and run.info.status == "FINISHED"
        assert run.info.run_name == f"eval small@step{ckpt.step} → {spec.name} [{tags['amuro.format']}]"
        metrics = run.data.metrics
        assert metrics["n"] == 5 and metrics["score_ci_low"] <= metrics["score"] <= metrics["score_ci_high"]
        assert 0 <= metrics["score"] <= 1 and metrics["score_se"] >= 0
    mlflow.set_experiment("pe")
    tables = {r.info.run_id: mlflow.load_table("predictions.json", run_ids=[r.info.run_id]) for r in runs}
    for table in tables.values():
        assert {"item_id", "prediction", "reference", "item_score"} <= set(table.columns) and len(table) == 5
    nli = [tables[r.info.run_id] for r in runs if r.data.tags["amuro.eval_dataset"] == "synth-nli"]
    assert all(list(t.item_id) == list(nli[0].item_id) for t in nli)
    models = mlflow.search_logged_models(experiment_ids=[runs[0].info.experiment_id], output_format="list")
    assert sorted(m.params["revision"] for m in models) == sorted(chosen)
    assert {r.data.tags["amuro.model_id"] for r in runs} == {m.model_id for m in models}

    def no_loading(self, **kwargs):
        raise AssertionError("a reused cell loaded its checkpoint")

    monkeypatch.setattr(Checkpoint, "load", no_loading)
    assert pretrain_eval(PretrainEvalSettings(**{**vars(cfg), "eval": quick(batch_size=3)})) == parent
    assert len(eval_runs()) == 8


def test_hub_checkpoints_are_referenced_by_repo_revision_and_commit(tracking_uri, small_series, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    names = ["step1000-tokens4B", "step2000-tokens8B", "step3000-tokens12B", "step4000-tokens16B"]
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    refs = write_hub_cache(small_series, "amuro-test/olmo-mini", tmp_path, names)
    monkeypatch.setattr(hub_listing, "list_repo_refs", refs)
    commits = {b.name: b.target_commit for b in refs("amuro-test/olmo-mini").branches}
    pretrain_eval(
        PretrainEvalSettings(
            experiment="pe",
            model="amuro-test/olmo-mini",
            checkpoints="2000,main",
            datasets="synth-paraphrase",
            eval=quick(method="loglik"),
        )
    )
    runs = {r.data.tags["amuro.revision"]: r.data.tags for r in eval_runs()}
    assert set(runs) == {"step2000-tokens8B", "main"}
    assert (runs["main"]["amuro.step"], runs["main"]["amuro.tokens"]) == ("4000", "16000000000")
    for revision, tags in runs.items():
        assert tags["amuro.model"] == "amuro-test/olmo-mini" and tags["amuro.source_run_id"] == ""
        assert (tags["amuro.hub_repo"], tags["amuro.hub_revision"], tags["amuro.hub_commit"]) == (
            "amuro-test/olmo-mini",
            revision,
            commits[revision],
        )


def invoke(*args):
    result = CliRunner().invoke(
        main, ["pretrain-eval", "--experiment", "pe", "--max-examples", "4", "--bootstrap", "50", *args]
    )
    assert result.exit_code != 0
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--datasets", "synth-nl"], "unknown dataset or task family 'synth-nl': did you mean synth-nli"),
        (["--datasets", "synth-nli", "--formats", "instrct"], "unknown prompt format 'instrct': did you mean instruct"),
        (["--method", "loglk"], "unknown method 'loglk': did you mean loglik"),
        (["--datasets", "synth-nli", "--shots", "2001"], "shots (2001) is larger than the training split of synth-nli"),
        (["--datasets", "synth-nli", "--max-examples", "0"], "max_examples must be at least 1, got 0"),
    ],
)
def test_bad_input_is_one_line_before_any_scoring(tracking_uri, small_series, args, message):
    assert message in invoke("--model", small_series, *args)
    assert eval_runs() == []


def test_empty_dataset_is_a_user_error(tracking_uri, small_series, tmp_path, monkeypatch):
    for split, rows in (("train", [{"premise": "A.", "hypothesis": "B.", "label": "neutral"}]), ("test", [])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = DatasetSpec(
        name="empty-nli",
        task="nli",
        source="local",
        path=str(tmp_path / "{split}.jsonl"),
        splits={"train": "train", "test": "test"},
        labels=("entailment", "neutral", "contradiction"),
        fields={"premise": "premise", "hypothesis": "hypothesis", "target": "label"},
    )
    monkeypatch.setitem(data.CATALOGUE, spec.name, spec)
    assert "empty" in invoke("--model", small_series, "--datasets", "empty-nli", "--shots", "1")
    assert eval_runs() == []


def test_checkpoint_that_fails_to_load_keeps_finished_cells(tracking_uri, small_series, tmp_path):
    copy = tmp_path / "series"
    shutil.copytree(small_series, copy)
    series = local_series(copy)
    first, last = series.checkpoints[0], series.checkpoints[-1]
    (Path(last.location) / "model.safetensors").write_bytes(b"not weights")
    line = invoke(
        "--model",
        str(copy),
        "--checkpoints",
        f"{first.revision},{last.revision}",
        "--datasets",
        "synth-nli",
        "--shots",
        "1",
    )
    assert line.startswith(f"Error: checkpoint {last.revision} of small failed to load")
    status = {r.data.tags["amuro.revision"]: r for r in eval_runs()}
    assert status[first.revision].info.status == "FINISHED" and "score" in status[first.revision].data.metrics
    assert status[last.revision].info.status == "FAILED"
    assert "failed to load" in status[last.revision].data.tags[tracking.ERROR_TAG]


@pytest.mark.slow
def test_mlflow_run_entry_point(small_series, tmp_path):
    env = store_env(tmp_path)
    params = {"experiment": "pe", "model": small_series, "checkpoints": 1, "datasets": "synth-nli"}
    command = mlflow_run(
        "pretrain-eval", {**params, "max_examples": 4, "shots": 1, "bootstrap": 50}, "--experiment-name", "pe"
    )
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = eval_runs()
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    launcher = MlflowClient().get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert launcher.data.tags["amuro.entry_point"] == "pretrain-eval"
