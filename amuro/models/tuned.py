"""The tuned-model store: a finetune run's weights under its artifact path ``model``, and loading them back."""

from __future__ import annotations

import logging
import shutil

import mlflow

from amuro.core.errors import UserError
from amuro.core.paths import amuro_home
from amuro.core.uploads import sized_timeout
from amuro.models.remote_code import require_trust
from amuro_contract import Artifact

MODEL_ARTIFACT = Artifact.MODEL


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [
        f"{name}=={version(name)}"
        for name in ("mlflow", "transformers", "torch", "accelerate", "tokenizers", "safetensors")
    ]


def log_tuned_model(model, tokenizer) -> None:
    """The tuned weights and tokenizer under ``model`` (``runs:/<id>/model``), as an MLflow transformers model."""
    quiet = logging.getLogger("mlflow.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # no model card or license lookups to warn about for local weights
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    try:
        with sized_timeout(weights):  # the largest weights file is at most all the weights
            mlflow.transformers.log_model(
                transformers_model={"model": model, "tokenizer": tokenizer},
                name=MODEL_ARTIFACT,
                task="text-generation",
                pip_requirements=_pip_requirements(),
            )
    finally:
        quiet.setLevel(level)


def load_tuned(run_id: str, *, dtype=None, trust_remote_code: bool = False):
    """(model, tokenizer) of a finetune run, from ``runs:/<run_id>/model``, downloaded once into AMURO_HOME.

    ``log_model`` writes the weights to ``model/model`` and the tokenizer to ``model/components/tokenizer``;
    ``mlflow.transformers.load_model(f"runs:/{run_id}/model")`` loads the same files as a pipeline. A model
    tuned from a repository with its own code keeps that code beside its weights, and loads only when trusted.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = amuro_home() / "tuned" / run_id
    if not (target / MODEL_ARTIFACT / "model" / "config.json").exists():
        partial = target.with_name(f"{run_id}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{run_id}/{MODEL_ARTIFACT}", dst_path=str(partial))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(
                f"run {run_id} has no tuned model to download ({first[:200]}): give a finished finetune run id"
            ) from None
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    folder = target / MODEL_ARTIFACT
    require_trust(str(folder / "model"), None, f"the model of finetune run {run_id}", trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(folder / "components" / "tokenizer", trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(folder / "model", dtype=dtype, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def open_registered_model(name: str) -> None:
    """Make sure the Model Registry holds ``name`` (creating it), before any training: a name the registry
    refuses fails here, in one line."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        client.get_registered_model(name)
        return
    except MlflowException:
        pass
    try:
        client.create_registered_model(name, description="Tuned models of amuro finetune runs.")
    except MlflowException as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"the model registry refused the name {name!r} ({first[:200]}): choose another "
            "--register name (letters, digits, '-', '_', '.'; no '/' or ':')"
        ) from None


def register_tuned(name: str, run_id: str, tags: dict[str, str]) -> int:
    """Register a finetune run's tuned model as a version of ``name`` with the contract tags as version
    tags (once per run: a run registered before keeps its version); returns the version number."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        return int(version.version)
    experiment_id = client.get_run(run_id).info.experiment_id
    logged = mlflow.search_logged_models(
        experiment_ids=[experiment_id],
        output_format="list",
        max_results=1,
        filter_string=f"source_run_id = '{run_id}' and name = '{MODEL_ARTIFACT}'",
    )
    uri = logged[0].model_uri if logged else f"runs:/{run_id}/{MODEL_ARTIFACT}"
    version = mlflow.register_model(uri, name, tags=tags)
    return int(version.version)
