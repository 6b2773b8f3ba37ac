"""Writing a command's results: the terminal or a file, and optionally an analysis run."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import click
import pandas as pd

from amuro_contract import Tag
from analysis.source import Source


def output_options(function):
    options = [
        click.option(
            "--format",
            "output_format",
            type=click.Choice(["table", "csv", "json"]),
            help="Output format (default: from --out's suffix, else table).",
        ),
        click.option("--out", type=click.Path(dir_okay=False), help="Write the table to this file, not the terminal."),
        click.option(
            "--log", is_flag=True, help="Also record the outputs as artifacts of a new run tagged amuro.kind=analysis."
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def to_json(table: pd.DataFrame) -> str:
    # pandas writes 10 significant digits by default, too few to compare scores by; 15 is its most.
    return table.to_json(orient="records", indent=2, double_precision=15)


def render(table: pd.DataFrame, output_format: str) -> str:
    if output_format == "csv":
        return table.to_csv(index=False)
    if output_format == "json":
        return to_json(table) + "\n"
    if table.empty:
        return "(no rows)\n"
    return table.to_string(index=False, float_format=lambda x: f"{x:.4f}") + "\n"


def show_missing(missing: pd.DataFrame | None, what: str) -> None:
    if missing is None or missing.empty:
        return
    click.echo(
        f"\nMissing partners: {len(missing)} run(s) not in the {what} table "
        f"(nothing to compare with):\n{render(missing, 'table')}",
        err=True,
    )


def emit(
    source: Source,
    name: str,
    table: pd.DataFrame,
    output_format,
    out,
    log,
    missing: pd.DataFrame | None = None,
    images: dict[str, bytes] | None = None,
    quiet: bool = False,
) -> None:
    """Print or write the table (not when ``quiet``: the command showed it its own way), list
    missing partners, and log everything if asked."""
    if output_format is None:
        suffix = Path(out).suffix.lower() if out else ""
        output_format = {".csv": "csv", ".json": "json"}.get(suffix, "table")
    text = render(table, output_format)
    if out:
        Path(out).write_text(text)
        click.echo(f"Wrote {out}", err=True)
    elif not quiet:
        click.echo(text, nl=False)
    show_missing(missing, name)
    if log:
        files = {f"{name}.csv": table.to_csv(index=False), f"{name}.json": to_json(table)}
        if missing is not None and not missing.empty:
            files[f"{name}-missing.csv"] = missing.to_csv(index=False)
        files.update(images or {})
        log_analysis_run(source, name, files)


def log_analysis_run(
    source: Source, name: str, files: dict[str, str | bytes], params: dict[str, str] | None = None
) -> str:
    """A new run tagged amuro.kind=analysis in the first experiment, holding ``files``."""
    from mlflow import MlflowClient
    from mlflow.entities import RunStatus

    from analysis.store import experiment_ids

    client = MlflowClient(source.tracking_uri)
    experiment = source.experiments[0]
    experiment_id = experiment_ids([experiment], source.tracking_uri)[experiment]
    tags = {Tag.KIND: "analysis", "mlflow.runName": f"analysis-{name}"}
    if source.model:
        tags[Tag.MODEL] = source.model
    run = client.create_run(experiment_id, tags=tags)
    run_id = run.info.run_id
    status = RunStatus.to_string(RunStatus.FAILED)
    # MLflow announces finished runs on stdout; keep stdout for the command's own output.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            client.log_param(run_id, "analysis", name)
            client.log_param(run_id, "experiments", ",".join(source.experiments))
            for key, value in (params or {}).items():
                client.log_param(run_id, key, value)
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
    click.echo(f"Logged to run {run_id} (experiment {experiment}) at {source.tracking_uri}", err=True)
    return run_id
