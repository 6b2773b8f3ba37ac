"""The runs a command analyses: the options that select them, and loading them with every
problem reported as one line."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import click
import pandas as pd

DEFAULT_EXPERIMENT = "amuro-char"


@dataclass
class Source:
    """Where the runs came from, and the options every command shares."""

    runs: pd.DataFrame
    tracking_uri: str
    experiments: tuple[str, ...]
    model: str | None
    predictions: object  # PredictionTables, or None for standard-error intervals only


def _default_experiments() -> tuple[str, ...]:
    return (os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT,)


def source_options(function):
    """Options that select the runs (shared by every command)."""
    options = [
        click.option(
            "--experiment",
            "experiments",
            multiple=True,
            default=_default_experiments,
            show_default="$MLFLOW_EXPERIMENT_NAME, else amuro-char",
            help="Experiment name; repeat to combine several.",
        ),
        click.option(
            "--tracking-uri", default=None, help="Tracking URI (default: MLflow's resolution, $MLFLOW_TRACKING_URI)."
        ),
        click.option("--model", default=None, help="Only this checkpoint series (amuro.model)."),
        click.option(
            "--paired/--no-paired",
            default=True,
            show_default=True,
            help="Bootstrap intervals from prediction tables where all exist.",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False),
            help="Cache of prediction tables (default ~/.cache/amuro/predictions).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def quiet_mlflow() -> None:
    # An unreachable server must fail in seconds, not after MLflow's default retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def load_runs(experiments, tracking_uri: str, model: str | None = None) -> pd.DataFrame:
    """The experiments' eval runs, or a one-line ClickException; loader warnings on stderr."""
    from mlflow.exceptions import MlflowException

    from analysis.runs import DuplicateRunsWarning, MalformedRunsWarning, load_eval_runs
    from analysis.store import TrackingError, check_tracking_uri

    try:
        check_tracking_uri(tracking_uri)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DuplicateRunsWarning)
            warnings.simplefilter("always", MalformedRunsWarning)
            runs = load_eval_runs(list(experiments), tracking_uri, model=model)
    except TrackingError as error:
        raise click.ClickException(str(error)) from None
    except MlflowException as error:
        first_line = (error.message or str(error)).strip().splitlines()[0]
        raise click.ClickException(f"tracking store {tracking_uri}: {first_line}") from None
    for warning in caught:
        if issubclass(warning.category, (DuplicateRunsWarning, MalformedRunsWarning)):
            click.echo(f"Warning: {warning.message}", err=True)
    return runs


def load_source(experiments, tracking_uri, model, paired, cache_dir) -> Source:
    quiet_mlflow()
    from analysis.predictions import PredictionTables
    from analysis.store import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    runs = load_runs(experiments, uri, model)
    if runs.empty:
        only = f" for model {model!r}" if model else ""
        raise click.ClickException(
            f"no finished eval runs (tag amuro.kind=eval){only} in experiment(s) {', '.join(experiments)} at {uri}"
        )
    predictions = PredictionTables(uri, cache_dir) if paired else None
    return Source(runs, uri, tuple(experiments), model, predictions)
