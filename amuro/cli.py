"""The ``amuro`` command: one click command per entry point, each a thin wrapper over one function."""

from __future__ import annotations

import os

import click

from amuro.config import FINETUNE_PRESETS

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


def _count_or_all(ctx, param, value):
    """``--max-examples``: a positive count, or empty / ``all`` for every item."""
    if value is None or str(value).strip().lower() in ("", "all", "none"):
        return None
    try:
        count = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a count: give a positive integer or 'all'") from None
    if count < 1:
        raise click.BadParameter(f"{count} is not positive: give a positive integer or 'all'")
    return count


def _optional(kind: type, minimum: float, *, open_minimum: bool = False):
    """A numeric option that may be left empty (``""``, as MLproject passes it) to take the preset's value."""

    def parse(ctx, param, value):
        if value is None or str(value).strip().lower() in ("", "none", "preset"):
            return None
        try:
            number = kind(value)
        except ValueError:
            noun = "whole number" if kind is int else "number"
            raise click.BadParameter(f"{value!r} is not a {noun}: give one or leave it empty") from None
        if number < minimum or (open_minimum and number == minimum):
            bound = "above" if open_minimum else "at least"
            raise click.BadParameter(f"{value} must be {bound} {minimum:g}")
        return number

    return parse


experiment_option = click.option("--experiment", default=None,
                                 help="MLflow experiment (default: MLFLOW_EXPERIMENT_NAME, else amuro-char).")


@main.command()
@experiment_option
@click.option("--series", default="tiny", show_default=True, help="Name of the checkpoint series to build.")
@click.option("--steps", type=click.IntRange(min=1), default=600, show_default=True, help="Training steps.")
@click.option("--num-checkpoints", type=click.IntRange(min=1), default=4, show_default=True,
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


@main.command()
@experiment_option
@click.option("--runs", default="all", show_default=True,
              help="Finetune run ids (comma-separated), a sweep run id, or 'all' finetune runs of the experiment.")
@click.option("--model", default=None, help="Only finetune runs of this series.")
@click.option("--train-dataset", default=None, help="Only finetune runs on these training sets (comma-separated).")
@click.option("--steps", default=None, help="Only finetune runs of these base steps (comma-separated).")
@click.option("--datasets", default="all", show_default=True,
              help="Dataset names, task families or 'all' (every eval set reachable offline).")
@click.option("--formats", default="all", show_default=True, help="Prompt formats (comma-separated) or 'all'.")
@click.option("--shots", type=click.IntRange(min=0), default=4, show_default=True)
@click.option("--method", type=click.Choice(["next-token", "loglik", "generate"]), default="next-token",
              show_default=True, help="Classification scoring.")
@click.option("--max-examples", default=None, callback=_count_or_all, help="Items scored per cell (default: all).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--bootstrap", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--with-base", type=click.BOOL, is_flag=False, flag_value=True, default=False, show_default=True,
              help="Also score missing base-checkpoint partners of the tuned cells (alone or true/false).")
@click.option("--dataset-spec", default=None, help="YAML/JSON dataset spec files (comma-separated).")
def crosseval(**options) -> None:
    """Score tuned models on in-domain, out-of-domain and other-task data, in every prompt format."""
    from amuro.config import CrossevalConfig
    from amuro.crosseval import crosseval as run

    run(CrossevalConfig(**options))


@main.command()
@experiment_option
@click.option("--model", default="tiny", show_default=True, help="Checkpoint series (name, folder or hub repo).")
@click.option("--checkpoints", default="all", show_default=True, help="'all', a count, or revisions/steps.")
@click.option("--train-datasets", default="synth-nli,synth-paraphrase,synth-summary,synth-qgen", show_default=True)
@click.option("--eval-datasets", default="all", show_default=True)
@click.option("--formats", default="all", show_default=True)
@click.option("--shots", type=click.IntRange(min=0), default=4, show_default=True)
@click.option("--tuning", type=click.Choice(["sft", "it"]), default="sft", show_default=True)
@click.option("--lora", is_flag=True, default=False)
@click.option("--method", type=click.Choice(["next-token", "loglik", "generate"]), default="next-token",
              show_default=True)
@click.option("--max-examples", type=click.IntRange(min=1), default=200, show_default=True,
              help="Items scored per eval cell.")
@click.option("--preset", type=click.Choice(list(FINETUNE_PRESETS)), default="tiny", show_default=True,
              help="finetune's preset of training settings.")
@click.option("--epochs", default=None, callback=_optional(int, 1),
              help="Fine-tuning epochs (default: 1 with the tiny preset, else the preset's).")
@click.option("--max-train-examples", type=click.IntRange(min=1), default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Cells run in parallel processes (against a tracking server).")
@click.option("--tracking-uri", "sweep_tracking_uri", default=None,
              help="Tracking server for the cells (default: the current URI; a local sqlite store is served by "
                   "a local mlflow server when workers > 1).")
@click.option("--dataset-spec", default=None, help="YAML/JSON dataset spec files (comma-separated).")
def sweep(sweep_tracking_uri: str | None, **options) -> None:
    """The whole study grid, resumable: pretrain-eval, finetune, crosseval, then the report."""
    from amuro.config import SweepConfig
    from amuro.sweep import sweep as run

    run(SweepConfig(tracking_uri=sweep_tracking_uri, **options))


@main.command("pretrain-eval")
@experiment_option
@click.option("--model", default="tiny", show_default=True,
              help="Checkpoint series: a series name ('tiny' is built if missing), a folder, runs:/<id>, a hub repo.")
@click.option("--checkpoints", default="all", show_default=True,
              help="'all', a count (evenly spaced), or revisions/steps (comma-separated).")
@click.option("--datasets", default="all", show_default=True,
              help="Dataset names, task families or 'all' (offline: the datasets available locally).")
@click.option("--formats", default="default", show_default=True, help="Prompt formats (comma-separated) or 'all'.")
@click.option("--shots", type=click.IntRange(min=0), default=4, show_default=True, help="Demonstrations per prompt.")
@click.option("--method", default="next-token", show_default=True,
              help="Classification scoring: next-token, loglik or generate.")
@click.option("--max-examples", default=None, callback=_count_or_all, help="Items scored per cell (default: all).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of demonstrations and bootstrap.")
@click.option("--bootstrap", type=click.IntRange(min=1), default=3000, show_default=True,
              help="Bootstrap resamples for the 95% interval.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=60, show_default=True,
              help="Generation budget of generation tasks.")
@click.option("--stop", default="default", show_default=True,
              help="'default' (the template's next block marker and a blank line) or 'none' (the study's).")
@click.option("--demos", default="train", show_default=True,
              help="'train' (seeded, from the train split) or 'first-k' (the first items of the scored split).")
@click.option("--dataset-spec", default=None, help="YAML/JSON dataset spec files (comma-separated).")
def pretrain_eval(**options) -> None:
    """Score checkpoints few-shot on every selected dataset and prompt format."""
    from amuro.config import PretrainEvalConfig
    from amuro.pretrain_eval import pretrain_eval as run

    run(PretrainEvalConfig(**options))


@main.command()
@experiment_option
@click.option("--model", default="tiny", show_default=True,
              help="Checkpoint series: a series name (built if 'tiny' is missing), a folder, runs:/<id>, or a hub repo.")
@click.option("--checkpoint", default=None, help="Revision or step of the base checkpoint (default: the last).")
@click.option("--dataset", default="synth-nli", show_default=True,
              help="Training set: a catalogue name (see `amuro datasets`) or one declared in --dataset-spec.")
@click.option("--dataset-spec", default=None, help="YAML/JSON file declaring extra datasets.")
@click.option("--tuning", type=click.Choice(["sft", "it"]), default="sft", show_default=True,
              help="sft: one task, loss on the answer; it: a chat mixture, loss on assistant turns.")
@click.option("--lora", type=click.BOOL, is_flag=False, flag_value=True, default=False, show_default=True,
              help="Train LoRA adapters (merged into the saved weights) instead of all weights (alone or true/false).")
@click.option("--lora-r", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lora-alpha", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lora-dropout", type=click.FloatRange(min=0, max=1, max_open=True), default=0.05, show_default=True)
@click.option("--preset", type=click.Choice(list(FINETUNE_PRESETS)), default="tiny", show_default=True,
              help="Defaults of the settings below: tiny (epochs 2, lr 3e-3, batch 4, max length 512, train "
                   "shots 4) or amuro-char (the study: epochs 3 (it: 5), lr 2e-6 (xsum: 2e-7), batch 8, max length "
                   "2048, train shots 0).")
@click.option("--epochs", default=None, callback=_optional(int, 1), help="Training epochs (default: the preset's).")
@click.option("--lr", default=None, callback=_optional(float, 0, open_minimum=True),
              help="Peak learning rate (default: the preset's).")
@click.option("--batch-size", default=None, callback=_optional(int, 1), help="Examples per device step.")
@click.option("--grad-accum", default=None, callback=_optional(int, 1), help="Steps per optimizer update.")
@click.option("--max-length", default=None, callback=_optional(int, 8), help="Longest training sequence in tokens.")
@click.option("--train-shots", default=None, callback=_optional(int, 0),
              help="Pack 0 to this many examples before each one, laid out as a few-shot prompt (tiny: 4, "
                   "amuro-char: 0).")
@click.option("--max-train-examples", default=None, callback=_optional(int, 1),
              help="Seeded subsample of the training split (default: all of it).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--trials", type=click.IntRange(min=0), default=0, show_default=True,
              help="Optuna trials searching lr and epochs on the validation split (0: no search).")
@click.option("--eval", "evaluate", type=click.BOOL, default=True, show_default=True,
              help="Score the tuned model and its base on the in-domain eval sets afterwards (true/false).")
@click.option("--eval-shots", type=click.IntRange(min=0), default=4, show_default=True)
@click.option("--eval-max-examples", default=None, callback=_count_or_all,
              help="Items scored per in-domain cell (default: all).")
@click.option("--save-steps", default=None, callback=_optional(int, 1),
              help="Trainer checkpoint interval in steps (default: about ten per run).")
def finetune(**options) -> None:
    """Fine-tune one checkpoint on one training set, log the tuned model, score it in-domain."""
    from amuro.config import FinetuneConfig
    from amuro.finetune import finetune as run

    run(FinetuneConfig(**options))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                "help_option_names": []})
@click.pass_context
def analyze(ctx: click.Context) -> None:
    """Gains, forgetting, transfer, prompt sensitivity, learned-in-pre-training, report (see `analyze --help`)."""
    from analysis.cli import cli

    cli.main(args=ctx.args, prog_name="amuro analyze")
