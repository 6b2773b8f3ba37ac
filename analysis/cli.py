"""Command line: ``python -m analysis <command> --experiment NAME ...`` (see ``analysis``)."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import click
import pandas as pd

DEFAULT_EXPERIMENT = "amuro-char"
DEFAULT_REPORT = "amuro-report.html"


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


def _source_options(function):
    """Options that select the runs (shared by every command)."""
    options = [
        click.option("--experiment", "experiments", multiple=True, default=_default_experiments,
                     show_default="$MLFLOW_EXPERIMENT_NAME, else amuro-char",
                     help="Experiment name; repeat to combine several."),
        click.option("--tracking-uri", default=None,
                     help="Tracking URI (default: MLflow's resolution, $MLFLOW_TRACKING_URI)."),
        click.option("--model", default=None, help="Only this checkpoint series (amuro.model)."),
        click.option("--paired/--no-paired", default=True, show_default=True,
                     help="Paired-bootstrap intervals from prediction tables where both exist."),
        click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                     help="Cache of prediction tables (default ~/.cache/amuro/predictions)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _output_options(function):
    options = [
        click.option("--format", "output_format", type=click.Choice(["table", "csv", "json"]),
                     default=None,
                     help="Output format (default: from --out's suffix, else table)."),
        click.option("--out", type=click.Path(dir_okay=False), default=None,
                     help="Write the table to this file instead of the terminal."),
        click.option("--log", is_flag=True,
                     help="Also record the outputs as artifacts of a new run tagged "
                          "amuro.kind=analysis."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _load(experiments, tracking_uri, model, paired, cache_dir) -> Source:
    # An unreachable server must fail in seconds, not after MLflow's default retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.exceptions import MlflowException

    from analysis.runs import (
        DuplicateRunsWarning, MalformedRunsWarning, PredictionTables, TrackingError,
        check_tracking_uri, load_eval_runs, resolve_tracking_uri,
    )

    uri = resolve_tracking_uri(tracking_uri)
    try:
        check_tracking_uri(uri)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DuplicateRunsWarning)
            warnings.simplefilter("always", MalformedRunsWarning)
            runs = load_eval_runs(list(experiments), uri, model=model)
    except TrackingError as error:
        raise click.ClickException(str(error)) from None
    except MlflowException as error:
        first_line = (error.message or str(error)).strip().splitlines()[0]
        raise click.ClickException(f"tracking store {uri}: {first_line}") from None
    for warning in caught:
        if issubclass(warning.category, (DuplicateRunsWarning, MalformedRunsWarning)):
            click.echo(f"Warning: {warning.message}", err=True)
    if runs.empty:
        only = f" for model {model!r}" if model else ""
        raise click.ClickException(
            f"no finished eval runs (tag amuro.kind=eval){only} in experiment(s) "
            f"{', '.join(experiments)} at {uri}"
        )
    predictions = PredictionTables(uri, cache_dir) if paired else None
    return Source(runs, uri, tuple(experiments), model, predictions)


def _render(table: pd.DataFrame, output_format: str) -> str:
    if output_format == "csv":
        return table.to_csv(index=False)
    if output_format == "json":
        return table.to_json(orient="records", indent=2) + "\n"
    if table.empty:
        return "(no rows)\n"
    return table.to_string(index=False, float_format=lambda x: f"{x:.4f}") + "\n"


def _show_missing(missing: pd.DataFrame | None, what: str) -> None:
    if missing is None or missing.empty:
        return
    click.echo(
        f"\nMissing partners: {len(missing)} run(s) not in the {what} table "
        f"(nothing to compare with):\n{_render(missing, 'table')}", err=True,
    )


def _emit(source: Source, name: str, table: pd.DataFrame, output_format, out, log,
          missing: pd.DataFrame | None = None, images: dict[str, bytes] | None = None) -> None:
    """Print or write the table, list missing partners, and log everything if asked."""
    if output_format is None:
        suffix = Path(out).suffix.lower() if out else ""
        output_format = {".csv": "csv", ".json": "json"}.get(suffix, "table")
    text = _render(table, output_format)
    if out:
        Path(out).write_text(text)
        click.echo(f"Wrote {out}", err=True)
    else:
        click.echo(text, nl=False)
    _show_missing(missing, name)
    if log:
        files = {f"{name}.csv": table.to_csv(index=False),
                 f"{name}.json": table.to_json(orient="records", indent=2)}
        if missing is not None and not missing.empty:
            files[f"{name}-missing.csv"] = missing.to_csv(index=False)
        files.update(images or {})
        _log_analysis_run(source, name, files)


def _log_analysis_run(source: Source, name: str, files: dict[str, str | bytes]) -> str:
    """A new run tagged amuro.kind=analysis in the first experiment, holding ``files``."""
    from mlflow import MlflowClient
    from mlflow.entities import RunStatus

    from analysis.runs import experiment_ids

    client = MlflowClient(source.tracking_uri)
    experiment = source.experiments[0]
    experiment_id = experiment_ids([experiment], source.tracking_uri)[experiment]
    tags = {"amuro.kind": "analysis", "mlflow.runName": f"analysis-{name}"}
    if source.model:
        tags["amuro.model"] = source.model
    run = client.create_run(experiment_id, tags=tags)
    run_id = run.info.run_id
    status = RunStatus.to_string(RunStatus.FAILED)
    # MLflow announces finished runs on stdout; keep stdout for the command's own output.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            client.log_param(run_id, "analysis", name)
            client.log_param(run_id, "experiments", ",".join(source.experiments))
            with tempfile.TemporaryDirectory() as scratch:
                for file_name, content in files.items():
                    path = Path(scratch, file_name)
                    if isinstance(content, bytes):
                        path.write_bytes(content)
                    else:
                        path.write_text(content)
                client.log_artifacts(run_id, scratch)
            status = RunStatus.to_string(RunStatus.FINISHED)
        finally:
            client.set_terminated(run_id, status)
    click.echo(f"Logged to run {run_id} (experiment {experiment}) at "
               f"{source.tracking_uri}", err=True)
    return run_id


def _command(function):
    """A subcommand that loads the runs first and passes them on as ``source``."""

    @_source_options
    @functools.wraps(function)
    def wrapper(experiments, tracking_uri, model, paired, cache_dir, **options):
        return function(_load(experiments, tracking_uri, model, paired, cache_dir), **options)

    return wrapper


@click.group(help="Analyse eval runs on the tracking server: gains, forgetting, transfer, "
                  "prompt sensitivity, what was learned in pre-training, and an HTML report.")
def cli():
    pass


@cli.command(help="Gain of tuning over the base checkpoint, with 95% intervals.")
@_command
@_output_options
@click.option("--by-group", is_flag=True,
              help="Mean gain per checkpoint for datasets learned in pre-training vs fine-tuning.")
@click.option("--relation", "relations", multiple=True,
              help="Only these relations (repeatable); --by-group defaults to in-domain.")
def gains(source: Source, output_format, out, log, by_group, relations):
    from analysis import figures
    from analysis.compare import gains as compute_gains
    from analysis.learned import gains_by_group, learned

    result = compute_gains(source.runs, source.predictions)
    table = result.table
    if relations:
        table = table[table["relation"].isin(relations)].reset_index(drop=True)
    images = {}
    if by_group:
        table = gains_by_group(table, learned(source.runs), tuple(relations) or ("in-domain",))
        if log:
            images["gain-by-group.png"] = figures.gain_by_group(table)
    elif log:
        images["score-by-step.png"] = figures.score_by_step(source.runs)
    name = "gains-by-group" if by_group else "gains"
    _emit(source, name, table, output_format, out, log, result.missing, images)


@cli.command(help="What tuning cost on out-of-domain and cross-task evaluations.")
@_command
@_output_options
def forgetting(source: Source, output_format, out, log):
    from analysis import figures
    from analysis.compare import forgetting as compute_forgetting

    result = compute_forgetting(source.runs, source.predictions)
    images = {"score-by-step.png": figures.score_by_step(source.runs)} if log else {}
    _emit(source, "forgetting", result.table, output_format, out, log, result.missing, images)


@cli.command(help="Mean gain by task tuned on x task evaluated.")
@_command
@_output_options
def transfer(source: Source, output_format, out, log):
    from analysis import figures
    from analysis.compare import transfer as compute_transfer

    table = compute_transfer(source.runs)
    images = {"transfer.png": figures.transfer_heatmap(table)} if log else {}
    _emit(source, "transfer", table, output_format, out, log, images=images)


@cli.command(help="Spread, std and default-format gap of the score across prompt formats.")
@_command
@_output_options
def sensitivity(source: Source, output_format, out, log):
    from analysis import figures
    from analysis.sensitivity import sensitivity as compute_sensitivity

    table = compute_sensitivity(source.runs)
    images = {"score-by-format.png": figures.score_by_format(source.runs)} if log else {}
    _emit(source, "sensitivity", table, output_format, out, log, images=images)


@cli.command(help="Which eval datasets the base checkpoints learn during pre-training.")
@_command
@_output_options
@click.option("--prompt-format", default="default", show_default=True,
              help="Prompt format of the base runs to judge by.")
def learned(source: Source, output_format, out, log, prompt_format):
    from analysis import figures
    from analysis.learned import learned as compute_learned

    table = compute_learned(source.runs, prompt_format)
    images = {"score-by-step.png": figures.score_by_step(source.runs, prompt_format)} if log else {}
    _emit(source, "learned", table, output_format, out, log, images=images)


@cli.command(help="Every analysis on one HTML page, also logged to an amuro.kind=analysis run.")
@_command
@click.option("--out", type=click.Path(dir_okay=False), default=DEFAULT_REPORT,
              show_default=True, help="Where to write the HTML page.")
def report(source: Source, out):
    from analysis.report import build_report

    page = build_report(source.runs, source.predictions, source=source.tracking_uri)
    Path(out).write_text(page.html)
    click.echo(f"Wrote {out}", err=True)
    files: dict[str, str | bytes] = {"report.html": page.html, **page.figures}
    files.update({f"{stem}.csv": table.to_csv(index=False) for stem, table in page.tables.items()})
    _log_analysis_run(source, "report", files)
