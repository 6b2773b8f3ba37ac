"""Settings of model size: a pretrain family of widths (``--sizes``) and a sweep over several series (``--model
a,b,c`` or ``--model-file``)."""

from __future__ import annotations

from pathlib import Path

from amuro.core.errors import UserError
from amuro.core.fields import require, setting, split_list

SIZE_SUFFIX = "x"


def sizes_setting():
    return setting(
        None,
        "Build a family of series, one per width: multiples of --hidden-size such as 1x,2x,4x; "
        "each series is named SERIES-<size> (tiny-2x).",
        key=False,
        empty="one series",
    )


def model_file_setting():
    return setting(
        None,
        "YAML file listing the series to sweep (a list of --model values, or a mapping with the list "
        "'models'); used instead of --model.",
        key=False,
        empty="--model",
    )


def widths(sizes: str, hidden_size: int, heads: int) -> dict[str, int]:
    """``"1x,2x"`` (or ``"1,2"``) with ``hidden_size=64`` -> ``{"1x": 64, "2x": 128}``; each width a whole
    multiple of heads."""
    found: dict[str, int] = {}
    for given in split_list(sizes):
        try:
            factor = float(given.removesuffix(SIZE_SUFFIX))
        except ValueError:
            factor = -1.0
        width = hidden_size * factor
        require(
            factor > 0 and width.is_integer(),
            f"size {given!r} is not a width multiple: give multiples of --hidden-size such as 1x,2x,4x",
        )
        size = f"{factor:g}{SIZE_SUFFIX}"
        require(size not in found, f"--sizes names {size} twice: give each size once")
        require(
            int(width) % heads == 0,
            f"size {size} makes the width {int(width)}, not divisible by heads ({heads}): pick other sizes or heads",
        )
        found[size] = int(width)
    require(bool(found), "--sizes is empty: give widths such as 1x,2x,4x, or leave it out for one series")
    return found


def model_list(model: str, model_file: str | None) -> list[str]:
    """The series a sweep runs the study for, each once: ``--model a,b,c`` or the list in ``--model-file``."""
    models = split_list(_read_model_file(model_file) if model_file else model)
    require(bool(models), "model must name a series: 'tiny', a folder, or a hub repo id")
    repeated = sorted({m for m in models if models.count(m) > 1})
    require(not repeated, f"--model names {', '.join(repeated)} more than once: give each series once")
    return models


def _read_model_file(path: str) -> list[str]:
    import yaml

    try:
        content = yaml.safe_load(Path(path).expanduser().read_text())
    except (OSError, yaml.YAMLError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot read --model-file {path} ({first}): give a YAML list of series") from None
    if isinstance(content, dict):
        content = content.get("models")
    if not isinstance(content, list) or not all(isinstance(m, str) for m in content):
        raise UserError(f"--model-file {path} must be a YAML list of series (or a mapping with the list 'models')")
    return content
