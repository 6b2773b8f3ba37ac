"""The ``amuro`` command: one click command per entry point, each a thin wrapper over one function."""

from __future__ import annotations

import os

import click

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=None,
              help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db).")
def main(tracking_uri: str | None) -> None:
    """Experiments on how pre-training and fine-tuning of language models interact."""
    if tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)


experiment_option = click.option("--experiment", default=None,
                                 help="MLflow experiment (default: MLFLOW_EXPERIMENT_NAME, else amuro-char).")


@main.command()
@experiment_option
@click.option("--series", default="tiny", show_default=True, help="Name of the checkpoint series to build.")
@click.option("--steps", type=click.IntRange(min=1), default=600, show_default=True, help="Training steps.")
@click.option("--num-checkpoints", type=click.IntRange(min=1), default=5, show_default=True,
              help="Checkpoints to save, dense early and sparse late; the last is the final step.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--corpus", default=None, help="Text file or folder of .txt files (default: the synthetic corpus).")
@click.option("--vocab-size", type=click.IntRange(min=300), default=2048, show_default=True)
@click.option("--hidden-size", type=click.IntRange(min=8), default=128, show_default=True)
@click.option("--layers", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--heads", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seq-len", type=click.IntRange(min=8), default=128, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True)
def pretrain(**options) -> None:
    """Train a small OLMo-architecture model from scratch and save a checkpoint series."""
    from amuro.config import PretrainConfig
    from amuro.pretrain import pretrain as run

    run(PretrainConfig(**options))


@main.command()
@click.option("--dataset-spec", "spec_files", multiple=True, type=click.Path(dir_okay=False),
              help="YAML/JSON file declaring extra datasets.")
def datasets(spec_files: tuple[str, ...]) -> None:
    """List the dataset catalogue."""
    from amuro.tasks.listing import catalogue_table

    click.echo(catalogue_table(spec_files))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                "help_option_names": []})
@click.pass_context
def analyze(ctx: click.Context) -> None:
    """Gains, forgetting, transfer, prompt sensitivity, learned-in-pre-training, report (see `analyze --help`)."""
    from analysis.cli import cli

    cli.main(args=ctx.args, prog_name="amuro analyze")
