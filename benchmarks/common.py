"""What the sweep benchmarks share: the small series they train, a grid's options, and an offline environment."""

from __future__ import annotations

import os
from pathlib import Path

# The small checkpoint series the benchmarks train (seconds on 2 cores).
SMALL_SERIES = {
    "steps": 40,
    "num_checkpoints": 2,
    "vocab_size": 600,
    "hidden_size": 64,
    "layers": 2,
    "heads": 2,
    "seq_len": 64,
    "batch_size": 8,
}
# A small grid's scoring: few items, one demonstration, a short bootstrap, one format, one eval set.
SMALL_GRID = {"eval_datasets": "synth-nli", "formats": "default", "max_examples": 8, "bootstrap": 50, "shots": 1}


def options(values: dict[str, object]) -> list[str]:
    """Settings as command-line options: ``{"max_examples": 8}`` is ``["--max-examples", "8"]``."""
    return [part for name, value in values.items() for part in (f"--{name.replace('_', '-')}", str(value))]


def series_options(name: str) -> list[str]:
    return ["--series", name, *options(SMALL_SERIES)]


def offline_env(home: Path, uri: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment for an amuro command: offline, its own AMURO_HOME and tracking store."""
    env = {
        **os.environ,
        "AMURO_HOME": str(home),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        **extra,
    }
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    return {**env, "MLFLOW_TRACKING_URI": uri} if uri else env
