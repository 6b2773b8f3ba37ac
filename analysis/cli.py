"""Command line: ``python -m analysis <command> --experiment NAME ...`` (see ``analysis``)."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import click

from analysis.findings.claims import DEFINITION_CHOICES, DETAILS
from analysis.output import emit, log_analysis_run, output_options
from analysis.published.ids import PublishedTableError
from analysis.published.importer import DEFAULT_EXPERIMENT as DEFAULT_PUBLISHED_EXPERIMENT
from analysis.source import Source, load_runs, load_source, quiet_mlflow, source_options

DEFAULT_REPORT = "amuro-report.html"


def _command(function):
    """A subcommand that loads the runs first and passes them on as ``source``; pairs the
    lineage check refuses are named on stderr, one line each."""

    @source_options
    @functools.wraps(function)
    def wrapper(experiments, tracking_uri, model, paired, cache_dir, **options):
        from analysis.lineage import LineageWarning

        source = load_source(experiments, tracking_uri, model, paired, cache_dir)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LineageWarning)
            result = function(source, **options)
        for warning in caught:
            if issubclass(warning.category, LineageWarning):
                click.echo(f"Warning: {warning.message}", err=True)
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        return result

    return wrapper


@click.group(
    help="Analyse eval runs on the tracking server: gains, forgetting, transfer, "
    "prompt sensitivity, what was learned in pre-training, and an HTML report."
)
def cli():
    pass


@cli.command(help="Gain of tuning over the base checkpoint, with 95% intervals.")
@_command
@output_options
@click.option(
    "--by-group", is_flag=True, help="Mean gain per checkpoint for datasets learned in pre-training vs fine-tuning."
)
@click.option(
    "--relation",
    "relations",
    multiple=True,
    help="Only these relations (repeatable); --by-group defaults to in-domain.",
)
def gains(source: Source, output_format, out, log, by_group, relations):
    from analysis import figures
    from analysis.compare import gains as compute_gains
    from analysis.learned import gains_by_group, learned

    result = compute_gains(source.runs, source.predictions)
    table = _flag_degenerate(source, result.table)
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
    emit(source, name, table, output_format, out, log, result.missing, images)


@cli.command(help="What tuning cost on out-of-domain and cross-task evaluations.")
@_command
@output_options
def forgetting(source: Source, output_format, out, log):
    from analysis import figures
    from analysis.compare import forgetting as compute_forgetting

    result = compute_forgetting(source.runs, source.predictions)
    images = {"score-by-step.png": figures.score_by_step(source.runs)} if log else {}
    emit(source, "forgetting", _flag_degenerate(source, result.table), output_format, out, log, result.missing, images)


def _flag_degenerate(source: Source, table):
    """The table with a column ``degenerate``: cells whose references hold a single class."""
    from analysis.findings.scope import degenerate_cells, flag_degenerate

    return flag_degenerate(table, degenerate_cells(source.runs, source.predictions))


@cli.command(help="Mean gain by task tuned on x task evaluated.")
@_command
@output_options
def transfer(source: Source, output_format, out, log):
    from analysis import figures
    from analysis.compare import transfer as compute_transfer

    table = compute_transfer(source.runs)
    images = {"transfer.png": figures.transfer_heatmap(table)} if log else {}
    emit(source, "transfer", table, output_format, out, log, images=images)


@cli.command(help="Spread, std and default-format gap of the score across prompt formats.")
@_command
@output_options
def sensitivity(source: Source, output_format, out, log):
    from analysis import figures
    from analysis.sensitivity import sensitivity as compute_sensitivity

    table = compute_sensitivity(source.runs)
    images = {"score-by-format.png": figures.score_by_format(source.runs)} if log else {}
    emit(source, "sensitivity", table, output_format, out, log, images=images)


@cli.command(help="Which eval datasets the base checkpoints learn during pre-training.")
@_command
@output_options
@click.option(
    "--prompt-format", default="default", show_default=True, help="Prompt format of the base runs to judge by."
)
def learned(source: Source, output_format, out, log, prompt_format):
    from analysis import figures
    from analysis.learned import learned as compute_learned

    table = compute_learned(source.runs, prompt_format)
    images = {"score-by-step.png": figures.score_by_step(source.runs, prompt_format)} if log else {}
    emit(source, "learned", table, output_format, out, log, images=images)


def _one_of(choices, what):
    """A callback refusing a value outside ``choices`` in one line, before any run is read."""

    def check(context, parameter, value):
        if value is not None and value not in choices:
            raise click.ClickException(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
        return value

    return check


@cli.command(
    help="The study's four findings as claims: each measured under the paper's own "
    "definitions and amuro's statistical ones, with a value, a 95% interval, a "
    "verdict and where it holds."
)
@_command
@output_options
@click.option(
    "--definitions",
    default="both",
    show_default=True,
    callback=_one_of(DEFINITION_CHOICES, "--definitions"),
    help="paper (the study's own computation), amuro (trend-tested groups, "
    "intervals, forgetting per relation) or both.",
)
@click.option(
    "--detail",
    default=None,
    callback=_one_of(DETAILS, "--detail"),
    help="Print the table behind one finding: latent, groups, forgetting or sensitivity.",
)
@click.option(
    "--groups",
    "groups_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML with the lists fine_tuning and pre_training (eval datasets, or "
    "[eval, train] pairs): the groups of finding (ii) under the paper's "
    "definitions, for a series or datasets of your own.",
)
@click.option(
    "--keep-degenerate", is_flag=True, help="Keep cells whose references hold a single class (left out by default)."
)
def findings(source: Source, output_format, out, log, definitions, detail, groups_file, keep_degenerate):
    from analysis.findings import FindingsError, FindingsSettings, measure_findings
    from analysis.findings.figures import finding_figures
    from analysis.findings.render import render_degenerate, render_summary
    from analysis.findings.sizes import render_sizes, sizes_figure

    settings = FindingsSettings(definitions, groups_file, keep_degenerate)
    try:
        measured = measure_findings(source.runs, settings, source.predictions)
    except FindingsError as error:
        raise click.ClickException(str(error)) from None
    for note in measured.notes:
        click.echo(f"Note: {note}", err=True)
    if not measured.degenerate.empty:
        kept = "kept, as --keep-degenerate asks" if keep_degenerate else "left out (--keep-degenerate keeps them)"
        click.echo(f"Degenerate cells, {kept}:\n{render_degenerate(measured.degenerate)}", err=True)
    table = measured.details[detail] if detail else measured.summary
    name = f"findings-{detail}" if detail else "findings"
    images = finding_figures(measured.details) if log else {}
    if log and not measured.sizes.empty:
        images["finding-sizes.png"] = sizes_figure(measured.sizes)
    suffix = Path(out).suffix.lower() if out else ""
    if detail is None and (output_format or {".csv": "csv", ".json": "json"}.get(suffix)) in (None, "table"):
        verdicts = render_summary(table) + render_sizes(measured.sizes)
        if out:
            Path(out).write_text(verdicts)
            click.echo(f"Wrote {out}", err=True)
        else:
            click.echo(verdicts, nl=False)
        emit(source, name, table, "table", None, log, images=images, quiet=True)
        return
    emit(source, name, table, output_format, out, log, images=images)


@cli.command(help="Every analysis on one HTML page, also logged to an amuro.kind=analysis run.")
@_command
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=DEFAULT_REPORT,
    show_default=True,
    help="Where to write the HTML page.",
)
@click.option(
    "--compare-to",
    default=None,
    metavar="EXPERIMENT",
    help="An experiment of published results (see import-published): every cell "
    "you share with it beside the paper's score, and the study's four findings "
    "on both sides.",
)
@click.option(
    "--findings-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the four findings' verdicts, as printed, to this text file.",
)
def report(source: Source, out, compare_to, findings_out):
    from analysis.findings.render import render_summary
    from analysis.findings.sizes import render_sizes
    from analysis.report import build_report

    runs, published = source.runs, None
    if compare_to:
        published = _published_runs(source, compare_to)
        runs = runs[runs["origin"] != "published"].reset_index(drop=True)
    page = build_report(
        runs, source.predictions, source=source.tracking_uri, published=published, published_name=compare_to
    )
    Path(out).write_text(page.html)
    if "findings" in page.tables:
        verdicts = render_summary(page.tables["findings"])
        if "findings-sizes" in page.tables:
            verdicts += render_sizes(page.tables["findings-sizes"])
        click.echo(verdicts, nl=False)
        if findings_out:
            Path(findings_out).write_text(verdicts)
    click.echo(f"Wrote {out}", err=True)
    files: dict[str, str | bytes] = {"report.html": page.html, **page.figures}
    files.update({f"{stem}.csv": table.to_csv(index=False) for stem, table in page.tables.items()})
    log_analysis_run(source, "report", files, {"compare_to": compare_to} if compare_to else None)


def _published_runs(source: Source, experiment: str):
    from analysis.store import TrackingError, experiment_ids

    missing = click.ClickException(
        f"experiment {experiment!r} at {source.tracking_uri} holds no published results "
        f"(amuro.origin=published); import them first: python -m analysis import-published "
        f"--experiment {experiment}"
    )
    try:
        experiment_ids([experiment], source.tracking_uri)
    except TrackingError:
        raise missing from None
    runs = load_runs([experiment], source.tracking_uri, source.model)
    runs = runs[runs["origin"] == "published"].reset_index(drop=True)
    if runs.empty:
        raise missing
    return runs


@cli.command(
    "import-published",
    help="Import the study's released results (shipped with the package) as eval runs "
    "tagged amuro.origin=published; importing again adds nothing.",
)
@click.option(
    "--experiment",
    default=DEFAULT_PUBLISHED_EXPERIMENT,
    show_default=True,
    help="Experiment to import into (created when missing; it must hold no eval runs of your own).",
)
@click.option("--tracking-uri", default=None, help="Tracking URI (default: MLflow's resolution, $MLFLOW_TRACKING_URI).")
@click.option(
    "--table",
    "tables",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A released table to import instead of the shipped ones (repeatable).",
)
def import_published_command(experiment, tracking_uri, tables):
    quiet_mlflow()
    from mlflow.exceptions import MlflowException

    from analysis.published.importer import ImportSettings, import_published
    from analysis.store import TrackingError

    settings = ImportSettings(experiment, tracking_uri)
    if tables:
        settings = ImportSettings(experiment, tracking_uri, tuple(tables))
    try:
        result = import_published(settings)
    except (PublishedTableError, TrackingError) as error:
        raise click.ClickException(str(error)) from None
    except MlflowException as error:
        first_line = (error.message or str(error)).strip().splitlines()[0]
        raise click.ClickException(f"tracking store: {first_line}") from None
    click.echo(
        f"Imported {result.added} published run(s) into experiment {result.experiment} "
        f"at {result.tracking_uri} ({result.present} already there)",
        err=True,
    )
