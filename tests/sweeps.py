"""Running ``amuro sweep`` as a user does, in a test's own folder and store, and reading back what it logged."""

import os
import sys
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

TRACKED = ("eval", "finetune", "sweep")
ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path, uri):
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "AMURO_HOME": str(tmp_path / "home")}
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(name, None)
    return env


def store_env(tmp_path, **extra: str) -> dict[str, str]:
    """This process's environment with a fresh sqlite store in ``tmp_path``, and no run or experiment of its own."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", **extra}
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(name, None)
    return env


def mlflow_run(entry_point: str, params: dict[str, object], *options: str) -> list[str]:
    """``mlflow run . -e ENTRY_POINT --env-manager local OPTIONS -P name=value ...``, as the docs write it."""
    given = [part for name, value in params.items() for part in ("-P", f"{name}={value}")]
    return [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(ROOT),
        "-e",
        entry_point,
        "--env-manager",
        "local",
        *options,
        *given,
    ]


def _runs(uri, experiment="amuro-char"):
    mlflow.set_tracking_uri(uri)
    try:
        client = MlflowClient()
        experiment = client.get_experiment_by_name(experiment)
        return [] if experiment is None else client.search_runs([experiment.experiment_id], max_results=5000)
    finally:
        mlflow.set_tracking_uri(None)


def _finished(runs):
    return {
        r.info.run_id: r.data.tags.get("amuro.run_key")
        for r in runs
        if r.info.status == "FINISHED" and r.data.tags.get("amuro.kind") in TRACKED
    }


def _sweep_argv(series, *extra):
    return [
        sys.executable,
        "-m",
        "amuro",
        "sweep",
        "--model",
        str(series),
        "--train-datasets",
        "synth-nli",
        "--eval-datasets",
        "synth-nli,synth-qgen",
        "--formats",
        "default",
        "--max-examples",
        "12",
        "--epochs",
        "1",
        "--max-train-examples",
        "48",
        *extra,
    ]
