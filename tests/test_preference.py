"""Preference tuning (--tuning dpo with TRL's DPOTrainer): synth-prefs raises the small series' reward accuracy,
tagged and logged as a finetune run, crossevaluated and read by the findings like any tuned model; a local copy
of UltraFeedback in its hub layout trains with LoRA; the pairs and run keys; bad input in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from hubdata import FIXTURES, write_hub_copy
from mlflow.tracking import MlflowClient

from amuro import data
from amuro.cli import main
from amuro.commands.crosseval import crosseval
from amuro.commands.finetune import finetune
from amuro.core import tracking
from amuro.core.settings import CrossevalSettings, EvalSettings, FinetuneSettings
from amuro.core.train_settings import TrainSettings
from amuro.models.tuned import load_tuned

ROOT = Path(__file__).resolve().parents[1]
DPO = dict(tuning="dpo", max_train_examples=512, epochs=1, batch_size=8, lr=5e-3, dpo_beta=0.1)
EVAL = EvalSettings(max_examples=600, shots=0, bootstrap=500)
CURVES = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


def _search(experiment_id: str, **tags) -> list:
    return tracking.search_runs(experiment_id, {f"amuro.{name}": value for name, value in tags.items()})


def test_synthetic_pairs_hold_the_reference_answer_and_a_wrong_one():
    spec = data.get("synth-prefs")
    pairs = data.load_examples(spec, "test")
    assert spec.task == "preference" and spec.metric == "reward_accuracy" and len(pairs) == 1200
    tasks = {pair.item_id.split("-")[1] for pair in pairs}
    assert tasks == {"nli", "paraphrase", "summary", "qgen"}
    nli = data.get("synth-nli")
    for pair in pairs[:60]:
        chosen, rejected = pair.choices[pair.gold], pair.choices[1 - pair.gold]
        assert chosen == pair.target and rejected != chosen
        if "-nli-" in pair.item_id:
            assert rejected in nli.labels and data.render(spec, pair, "default").endswith("### Inference: ")
    trained = {p.slots["prompt"] for p in data.load_examples(spec, "train")}
    assert not trained & {p.slots["prompt"] for p in pairs}  # held-out pairs
    assert "synth-prefs" not in [s.name for s in data.resolve("all")]  # scored where named or after DPO


def test_dpo_settings_enter_the_run_key_of_dpo_runs_only():
    def key(**train) -> dict:
        return FinetuneSettings(dataset="synth-prefs", train=TrainSettings(**train)).key_settings()

    assert "dpo_beta" not in FinetuneSettings().key_settings()
    assert key(tuning="dpo")["dpo_beta"] == 0.1 and key(tuning="dpo")["dpo_loss"] == "sigmoid"
    assert key(tuning="dpo") != key(tuning="dpo", dpo_beta=0.5) != key(tuning="dpo", dpo_loss="ipo")


@pytest.mark.slow
def test_dpo_raises_reward_accuracy_and_is_a_tuned_model_like_any(small_series, tracking_uri, tmp_path):
    run_id = finetune(
        FinetuneSettings(
            experiment="dpo", model=small_series, dataset="synth-prefs", train=TrainSettings(**DPO), eval=EVAL
        )
    )
    client = MlflowClient()
    run = client.get_run(run_id)
    tags, experiment_id = run.data.tags, run.info.experiment_id
    assert (tags["amuro.kind"], tags["amuro.tuning"], tags["amuro.train_dataset"]) == ("finetune", "dpo", "synth-prefs")
    assert run.data.params["dpo_beta"] == "0.1" and run.data.params["dpo_loss"] == "sigmoid"
    for name in (*CURVES, "train_loss", "lr"):
        history = client.get_metric_history(run_id, name)
        assert len(history) >= 2 and len({m.step for m in history}) == len(history), name
    model, _ = load_tuned(run_id)
    assert model.config.model_type == "olmo"

    # In-domain: the held-out pairs, tuned and base, each with its bootstrap interval.
    [tuned] = _search(experiment_id, kind="eval", tuning="dpo", eval_dataset="synth-prefs")
    [base] = _search(experiment_id, kind="eval", tuning="none", eval_dataset="synth-prefs")
    assert tuned.data.tags["amuro.relation"] == "in-domain" and tuned.data.tags["amuro.metric"] == "reward_accuracy"
    assert tuned.data.tags["amuro.source_run_id"] == run_id
    assert tuned.data.metrics["score_ci_low"] > base.data.metrics["score_ci_high"], (
        tuned.data.metrics,
        base.data.metrics,
    )

    # crosseval: the usual eval sets, and the preference set's pairs again (the in-domain cell, reused).
    crosseval(
        CrossevalSettings(
            experiment="dpo", runs=run_id, datasets="synth-nli", formats="default", eval=EVAL, with_base=True
        )
    )
    nli = _search(experiment_id, kind="eval", tuning="dpo", eval_dataset="synth-nli")
    assert [r.data.tags["amuro.relation"] for r in nli] == ["cross-task"]
    assert len(_search(experiment_id, kind="eval", tuning="dpo", eval_dataset="synth-prefs")) == 1

    # The findings read the DPO model's cells as any tuned model's: paired with the base, forgetting by relation.
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "MLFLOW_DISABLE_TELEMETRY": "true"}
    findings = subprocess.run(
        [sys.executable, "-m", "analysis", "findings", "--tracking-uri", tracking_uri, "--experiment", "dpo"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert findings.returncode == 0, findings.stderr
    assert "synth-prefs" in findings.stdout


def test_ultrafeedback_local_copy_trains_a_few_steps_with_lora(small_series, tracking_uri, tmp_path, monkeypatch):
    import datasets

    spec = data.get("ultrafeedback")
    features, splits = FIXTURES["ultrafeedback"]
    write_hub_copy(tmp_path / "data" / spec.name, spec, splits, features)
    monkeypatch.setenv("AMURO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    pairs = data.load_examples(spec, "test")
    assert len(pairs) == len(splits["test_prefs"]) and pairs[0].item_id == splits["test_prefs"][0]["prompt_id"]
    assert data.render(spec, pairs[0], "default") == f"<|user|>\n{splits['test_prefs'][0]['prompt']}\n<|assistant|>\n"
    train = TrainSettings(tuning="dpo", lora=True, epochs=1, batch_size=4, max_train_examples=8, lr=1e-3)
    run_id = finetune(
        FinetuneSettings(experiment="uf", model=small_series, dataset="ultrafeedback", train=train, evaluate=False)
    )
    run = MlflowClient().get_run(run_id)
    assert run.data.tags["amuro.tuning"] == "dpo+lora" and run.data.params["train_examples"] == "8"
    assert MlflowClient().get_metric_history(run_id, "rewards/margins")
    assert "lora/adapter_config.json" in [a.path for a in MlflowClient().list_artifacts(run_id, "lora")]
    assert mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path="model")


@pytest.mark.parametrize(
    "command, arguments, message",
    [
        ("finetune", ["--tuning", "dpo", "--dataset", "synth-nli"], "--tuning dpo needs preference pairs"),
        ("finetune", ["--dataset", "synth-prefs"], "synth-prefs holds preference pairs: train on it with --tuning dpo"),
        (
            "finetune",
            ["--tuning", "dpo", "--dataset", "synth-prefs", "--trials", "2"],
            "use --trials 0 with --tuning dpo",
        ),
        ("finetune", ["--tuning", "dpo", "--dpo-loss", "kto"], "dpo-loss"),
        ("sweep", ["--tuning", "dpo"], "--tuning dpo needs preference pairs (prompt, chosen, rejected), and synth-nli"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tracking_uri, small_series, command, arguments, message):
    result = CliRunner().invoke(main, [command, "--experiment", "bad", "--model", small_series, *arguments])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output
