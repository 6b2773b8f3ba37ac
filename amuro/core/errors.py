"""User-facing errors: one line, naming the problem and the fix, no traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import click


class UserError(click.ClickException):
    """A mistake in the user's input or environment; the CLI prints it on one line and exits non-zero."""

    exit_code = 2


def unknown(what: str, name: str, valid: Iterable[str]) -> UserError:
    """An error for an unknown name that suggests the nearest valid ones."""
    valid = sorted(set(valid))
    near = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = (
        f"did you mean {', '.join(near)}?"
        if near
        else f"valid: {', '.join(valid[:12])}" + (", ..." if len(valid) > 12 else "")
    )
    return UserError(f"unknown {what} {name!r}: {hint}")
