"""The ``amuro`` command: one click command per entry point, its options generated from the settings fields.

Each command builds its entry point's settings object and calls the entry point's one function. The
MLproject file is generated from the same fields (``python -m amuro mlproject``), so an option, its default
and its MLproject parameter cannot drift apart.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

import click

from amuro.core.faults import as_user_error
from amuro.core.fields import Settings, base_type
from amuro.core.interruption import stop_on_sigterm
from amuro.core.options import Option, options_of, settings_from_options
from amuro.core.settings import ENTRY_POINT_SETTINGS

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RUNNERS = {
    "pretrain": "amuro.commands.pretrain:pretrain",
    "pretrain-eval": "amuro.commands.pretrain_eval:pretrain_eval",
    "finetune": "amuro.commands.finetune:finetune",
    "crosseval": "amuro.commands.crosseval:crosseval",
    "sweep": "amuro.commands.sweep:sweep",
    "checkpoints": "amuro.commands.checkpoints:checkpoints",
}
CONFIG_OPTION = "config"


def _help(option: Option) -> str:
    kind, optional = base_type(option.hint)
    parts = [option.meta.help]
    if option.meta.choices:
        parts.append(f"One of: {', '.join(option.meta.choices)}.")
    if option.default is None and option.meta.empty:
        parts.append(f"[default: {option.meta.empty}]")
    elif option.default is not None:
        parts.append(f"[default: {option.default_text}]")
    if kind is bool:
        parts.append("(alone or true/false)" if option.meta.flag else "(true/false)")
    return " ".join(p for p in parts if p)


def _click_option(option: Option) -> Callable:
    kind, _ = base_type(option.hint)
    metavar = {int: "INTEGER", float: "NUMBER", bool: "BOOL"}.get(kind, "TEXT")
    extra = {"is_flag": False, "flag_value": "true"} if kind is bool and option.meta.flag else {}
    return click.option(option.flag, option.name, default=None, metavar=metavar, help=_help(option), **extra)


def _runner(entry_point: str) -> Callable:
    module, name = RUNNERS[entry_point].split(":")
    return getattr(importlib.import_module(module), name)


def _make_command(entry_point: str, cls: type[Settings]) -> click.Command:
    def command(**given) -> None:
        config = given.pop(CONFIG_OPTION)
        settings = settings_from_options(cls, given, config)
        if entry_point != "sweep":  # a sweep stops at once; its cells are stopped with it and resumed later
            stop_on_sigterm()
        try:
            _runner(entry_point)(settings)
        except click.ClickException:
            raise
        except Exception as exc:
            fault = as_user_error(exc)
            if fault is None:
                raise
            raise fault from None

    command.__doc__ = cls.__doc__
    for option in reversed(list(options_of(cls))):
        command = _click_option(option)(command)
    command = click.option(
        "--config",
        "--settings-file",
        CONFIG_OPTION,
        default=None,
        metavar="FILE",
        type=click.Path(exists=True, dir_okay=False),
        help="A YAML (or JSON) file of settings: `option: value` lines (or what Settings.to_json "
        "writes); the options given here go on top of it.",
    )(command)
    return click.command(entry_point, help=cls.__doc__)(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    default=None,
    help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db).",
)
def main(tracking_uri: str | None) -> None:
    """Experiments on how pre-training and fine-tuning of language models interact."""
    if tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)


for _entry_point, _cls in ENTRY_POINT_SETTINGS.items():
    main.add_command(_make_command(_entry_point, _cls))


@main.command()
@click.option(
    "--dataset-spec",
    "spec_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="YAML/JSON file declaring extra datasets.",
)
def datasets(spec_files: tuple[str, ...]) -> None:
    """List the dataset catalogue."""
    from amuro.data.listing import catalogue_table

    click.echo(catalogue_table(spec_files))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.pass_context
def analyze(ctx: click.Context) -> None:
    """Gains, forgetting, transfer, prompt sensitivity, learned-in-pre-training, report (see `analyze --help`).

    The analysis is its own package that reads only the tracking server; this runs ``python -m analysis``."""
    import sys

    os.execv(sys.executable, [sys.executable, "-m", "analysis", *ctx.args])


@main.command()
@click.option("--check", is_flag=True, help="Fail if MLproject differs from what the settings generate.")
@click.option("--path", default="MLproject", show_default=True, type=click.Path(dir_okay=False))
def mlproject(check: bool, path: str) -> None:
    """Write MLproject from the settings fields (every entry point's parameters and command)."""
    from amuro.core.errors import UserError
    from amuro.mlproject import mlproject_text

    path = Path(path)
    text = mlproject_text(ENTRY_POINT_SETTINGS, options_of)
    if check:
        if not path.exists() or path.read_text() != text:
            raise UserError("MLproject is out of date with the settings: run `python -m amuro mlproject`")
        return
    path.write_text(text)
    click.echo(f"wrote {path}")
