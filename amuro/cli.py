"""The ``amuro`` command: one click command per entry point, its options generated from the settings fields.

Each command builds its entry point's settings object and calls the entry point's one function. The
MLproject file is generated from the same fields (``python -m amuro mlproject``), so an option, its default
and its MLproject parameter cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from amuro.core.fields import (
    Declared,
    Settings,
    base_type,
    declared,
    field_types,
    is_settings,
)
from amuro.core.interruption import stop_on_sigterm
from amuro.core.settings import ENTRY_POINT_SETTINGS

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RUNNERS = {
    "pretrain": "amuro.commands.pretrain:pretrain",
    "pretrain-eval": "amuro.commands.pretrain_eval:pretrain_eval",
    "finetune": "amuro.commands.finetune:finetune",
    "crosseval": "amuro.commands.crosseval:crosseval",
    "sweep": "amuro.commands.sweep:sweep",
}
SETTINGS_FILE_OPTION = "settings_file"


@dataclasses.dataclass(frozen=True)
class Option:
    """One CLI option / MLproject parameter: a settings field, possibly inside a nested settings object."""

    path: tuple[str, ...]      # ("eval", "shots") for a nested field
    name: str                  # option name without dashes, underscores: "eval_shots"
    hint: object
    meta: Declared
    default: object

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def default_text(self) -> str:
        if self.default is None:
            return ""
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return str(self.default)


def declared_defaults(cls: type[Settings]) -> dict[str, object]:
    """Each field's declared default, before ``validate`` resolves the ones that depend on others (a preset's
    epochs, a protocol's seed): an option not given must stay unset, not take another setting's resolution."""
    values: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
            values[f.name] = value.to_dict() if isinstance(value, Settings) else value
    return values


def options_of(cls: type[Settings], prefix: str = "", path: tuple[str, ...] = (), defaults=None,
               shadowed: frozenset[str] = frozenset()) -> Iterator[Option]:
    """The options of a settings class, nested settings flattened under their option prefix; a nested field
    that the outer class also declares (finetune's ``protocol``) is set through the outer one only."""
    defaults = defaults if defaults is not None else declared_defaults(cls)
    hints = field_types(cls)
    covering = frozenset(f.name for f in dataclasses.fields(cls) if declared(f).covers_nested)
    for f in dataclasses.fields(cls):
        meta = declared(f)
        if not meta.cli or f.name in shadowed:
            continue
        hint, value = hints[f.name], defaults[f.name]
        own = meta.option if meta.option is not None else f.name
        if is_settings(hint):
            inner = f"{prefix}{own}_" if own else prefix
            yield from options_of(hint, inner, (*path, f.name), value, covering)
        else:
            yield Option((*path, f.name), prefix + own, hint, meta, value)


def settings_from_options(cls: type[Settings], given: dict[str, object]):
    """A settings object from the options given (None: not given, the field's default)."""
    values = declared_defaults(cls)
    for option in options_of(cls):
        text = given.get(option.name)
        if text is None:
            continue
        target = values
        for part in option.path[:-1]:
            target = target[part]
        target[option.path[-1]] = text
    return cls.from_dict(values)


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
        settings_file = given.pop(SETTINGS_FILE_OPTION)
        if settings_file:
            settings = cls.from_json(Path(settings_file).read_text())
        else:
            settings = settings_from_options(cls, given)
        if entry_point != "sweep":   # a sweep stops at once; its cells are stopped with it and resumed later
            stop_on_sigterm()
        _runner(entry_point)(settings)

    command.__doc__ = cls.__doc__
    for option in reversed(list(options_of(cls))):
        command = _click_option(option)(command)
    command = click.option("--settings-file", SETTINGS_FILE_OPTION, default=None,
                           type=click.Path(exists=True, dir_okay=False),
                           help="A JSON settings file (Settings.to_json); the other options are then ignored.")(
        command)
    return click.command(entry_point, help=cls.__doc__)(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=None,
              help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db).")
def main(tracking_uri: str | None) -> None:
    """Experiments on how pre-training and fine-tuning of language models interact."""
    if tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)


for _entry_point, _cls in ENTRY_POINT_SETTINGS.items():
    main.add_command(_make_command(_entry_point, _cls))


@main.command()
@click.option("--dataset-spec", "spec_files", multiple=True, type=click.Path(dir_okay=False),
              help="YAML/JSON file declaring extra datasets.")
def datasets(spec_files: tuple[str, ...]) -> None:
    """List the dataset catalogue."""
    from amuro.data.listing import catalogue_table

    click.echo(catalogue_table(spec_files))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                "help_option_names": []})
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
