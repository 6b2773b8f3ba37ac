"""The CLI reference page, generated the way MLproject is: from the settings fields behind every option.

    python scripts/cli_reference.py            # rewrite docs/reference/cli.md
    python scripts/cli_reference.py --check    # exit 1 when it differs from what the settings generate

Every ``amuro`` entry point's options come from its settings dataclass (``amuro.core.settings``), walked with
the same ``options_of`` that builds the click options and the MLproject parameters, so the page shows each
option's MLproject parameter, default, whether it enters the run key, and its help. The other ``amuro``
commands and the ``python -m analysis`` commands are read from their click definitions.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reference" / "cli.md"
ENTRY_POINT_PAGES = {
    "pretrain": "pretrain",
    "pretrain-eval": "pretrain-eval",
    "finetune": "finetune",
    "crosseval": "crosseval",
    "sweep": "sweep",
    "checkpoints": "checkpoints",
}

HEADER = """\
<!-- Generated from the settings by `python scripts/cli_reference.py`; edit the settings, not this page. -->
# CLI reference

Every option of every command, generated from the settings fields that declare them (the same fields the
`MLproject` parameters come from), so this page cannot drift from the code: a test fails when it is stale
(`python scripts/cli_reference.py` rewrites it).

Each entry point is an `amuro` sub-command and an `MLproject` entry point with one parameter per option:
`amuro finetune --eval-shots 2` is `mlflow run . -e finetune -P eval_shots=2`. An empty value, `none` or
`all` leaves an optional setting at the meaning its default column gives. **Run key** says whether the
setting enters the run key, the hash under which a finished run is reused instead of redone.

Global option of `amuro` (before the sub-command): `--tracking-uri URI` (default `MLFLOW_TRACKING_URI`,
else `sqlite:///mlflow.db`).
"""


def _cell(text: object) -> str:
    """Text for a markdown table cell: no pipes, no raw angle brackets, one line."""
    text = " ".join(str(text).split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def _default(option) -> str:
    if option.default is None:
        return _cell(option.meta.empty or "")
    return _code(_cell(option.default_text))


def _group_title(cls, path: tuple[str, ...]) -> str:
    """The nested settings class a group of options belongs to, e.g. ``eval`` -> ``EvalSettings``."""
    hints = typing.get_type_hints(cls)
    inner = cls
    for part in path:
        inner = hints[part]
        hints = typing.get_type_hints(inner)
    return inner.__name__


def _entry_point(name: str, cls, command: click.Command, options_of) -> list[str]:
    options = list(options_of(cls))
    lines = [
        f"## `amuro {name}`",
        "",
        _first_paragraph(cls.__doc__),
        "",
        f"`amuro {name} [OPTIONS]` or `mlflow run . -e {name} -P NAME=VALUE`; "
        f"what it does: [{name}](../entry-points/{ENTRY_POINT_PAGES[name]}.md).",
        "",
    ]
    groups: dict[tuple[str, ...], list] = {}
    for option in options:
        groups.setdefault(option.path[:-1], []).append(option)
    for path, members in groups.items():
        if path:
            lines += [f"**{_group_title(cls, path)}** (`{'.'.join(path)}`):", ""]
        lines += ["| option | MLproject | default | run key | help |", "| --- | --- | --- | --- | --- |"]
        for option in members:
            choices = f" One of: {', '.join(option.meta.choices)}." if option.meta.choices else ""
            lines.append(
                f"| `{option.flag}` | `{option.name}` | {_default(option)} | "
                f"{'yes' if option.meta.key else 'no'} | {_cell(option.meta.help + choices)} |"
            )
        lines.append("")
    own = {option.name for option in options}
    rest = [param for param in command.params if param.name not in own]
    if rest:
        lines += ["Beside the settings:", ""]
        for param in rest:
            lines.append(f"- `{' / '.join(param.opts)}`: {_cell(getattr(param, 'help', '') or '')}")
        lines.append("")
    return lines


def _click_default(param: click.Parameter) -> str:
    default = param.default
    if default is None or callable(default) or default is False or default == ():
        return ""
    if default is True:
        return "`true`"
    return _code(_cell(default))


def _click_command(prefix: str, name: str, command: click.Command) -> list[str]:
    lines = [f"### `{prefix} {name}`", "", _cell(_first_paragraph(command.help)), ""]
    params = [param for param in command.params if isinstance(param, click.Option)]
    arguments = [param for param in command.params if isinstance(param, click.Argument)]
    if arguments:
        lines += ["Arguments: " + ", ".join(f"`{param.human_readable_name}`" for param in arguments), ""]
    if params:
        lines += ["| option | default | help |", "| --- | --- | --- |"]
        for param in params:
            opts = " / ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
            lines.append(f"| {opts} | {_click_default(param)} | {_cell(param.help or '')} |")
        lines.append("")
    return lines


def reference_text() -> str:
    from amuro.cli import main, options_of
    from amuro.core.settings import ENTRY_POINT_SETTINGS
    from analysis.cli import cli as analysis_cli

    lines = [HEADER]
    for name, cls in ENTRY_POINT_SETTINGS.items():
        lines += _entry_point(name, cls, main.commands[name], options_of)
    lines += ["## Other `amuro` commands", ""]
    for name in sorted(set(main.commands) - set(ENTRY_POINT_SETTINGS)):
        lines += _click_command("amuro", name, main.commands[name])
    lines += [
        "## `python -m analysis`",
        "",
        "`amuro analyze ARGS` runs `python -m analysis ARGS`; the `MLproject` entry point `analyze` takes "
        "`command`, `experiment` and `out`. What each computes: [analyze](../entry-points/analyze.md).",
        "",
    ]
    for name in sorted(analysis_cli.commands):
        lines += _click_command("python -m analysis", name, analysis_cli.commands[name])
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = reference_text()
    if "--check" in argv:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(
                f"{PAGE.relative_to(ROOT)} is out of date with the settings: run `python scripts/cli_reference.py`",
                file=sys.stderr,
            )
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
