"""finetune --register: the tuned model as a Model Registry version carrying the contract tags."""

import mlflow
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from amuro.cli import main
from amuro.commands.finetune import finetune
from amuro.core.settings import FinetuneSettings
from amuro.core.train_settings import TrainSettings


def test_registered_version_carries_contract_tags_and_loads_like_the_run(tracking_uri, small_series):
    cfg = FinetuneSettings(
        experiment="reg",
        model=small_series,
        dataset="synth-nli",
        train=TrainSettings(epochs=1, max_train_examples=16, batch_size=8, seed=3),
        evaluate=False,
        register="tiny-nli",
    )
    result = CliRunner().invoke(
        main,
        [
            "finetune",
            "--experiment",
            "reg",
            "--model",
            small_series,
            "--epochs",
            "1",
            "--max-train-examples",
            "16",
            "--batch-size",
            "8",
            "--eval",
            "false",
            "--seed",
            "3",
            "--register",
            "tiny-nli",
        ],
    )
    assert result.exit_code == 0, result.output
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("reg").experiment_id], "tags.`amuro.kind` = 'finetune'")
    run_id = run.info.run_id
    assert "registered as models:/tiny-nli/1" in result.output
    (version,) = client.search_model_versions("name = 'tiny-nli'")
    assert int(version.version) == 1 and version.run_id == run_id
    run_tags = client.get_run(run_id).data.tags
    contract = {k: v for k, v in run_tags.items() if k.startswith("amuro.") and k in version.tags}
    assert version.tags["amuro.kind"] == "finetune" and version.tags["amuro.seed"] == "3"
    assert {"amuro.model", "amuro.step", "amuro.tuning", "amuro.train_dataset", "amuro.run_key"} <= set(contract)
    assert all(version.tags[k] == run_tags[k] for k in contract)

    registered = mlflow.transformers.load_model("models:/tiny-nli/1")
    logged = mlflow.transformers.load_model(f"runs:/{run_id}/model")
    prompt = "Premise: a cat sat. Hypothesis: a cat sat. Answer:"
    assert registered(prompt, max_new_tokens=3, do_sample=False) == logged(prompt, max_new_tokens=3, do_sample=False)

    assert finetune(cfg) == run_id  # reused run, same version
    assert len(client.search_model_versions("name = 'tiny-nli'")) == 1


def test_a_name_the_registry_refuses_fails_in_one_line_before_training(tracking_uri, small_series):
    result = CliRunner().invoke(
        main,
        [
            "finetune",
            "--experiment",
            "reg",
            "--model",
            small_series,
            "--register",
            "team/tiny:nli",
            "--max-train-examples",
            "8",
        ],
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if " INFO " not in line and line.strip()]
    assert "registry refused the name 'team/tiny:nli'" in line and "--register" in line
    experiment = MlflowClient().get_experiment_by_name("reg")
    assert experiment is None or not MlflowClient().search_runs(
        [experiment.experiment_id], "tags.`amuro.kind` = 'finetune'"
    )
