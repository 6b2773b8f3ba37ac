"""Parsers of setting values that several entry points share: seed lists, batch sizes, dataset selections."""

from __future__ import annotations

from amuro.core.errors import UserError
from amuro.core.fields import require, split_list


def seed_list(seeds: str | None, single: int) -> list[int]:
    """The replicate seeds: ``seeds`` parsed ("0,1,2"), or ``[single]`` when not given."""
    if seeds is None:
        return [single]
    words = split_list(seeds)
    require(
        bool(words),
        f"seeds {seeds!r} lists no seed: give comma-separated integers such as 0,1,2, or leave it out for one run",
    )
    try:
        values = [int(word) for word in words]
    except ValueError:
        raise UserError(f"seeds takes comma-separated integers such as 0,1,2, got {seeds!r}") from None
    repeated = sorted({v for v in values if values.count(v) > 1})
    require(not repeated, f"seeds {seeds!r} repeats {', '.join(map(str, repeated))}: give each seed once")
    return values


def dataset_selection(datasets: str | None, lm_eval_tasks: str | None, lm_eval_include: str | None) -> str | None:
    """The catalogue datasets to score: as given; left empty, ``all`` unless lm-eval tasks are (None: none)."""
    if datasets:
        return None if datasets.strip().lower() == "none" else datasets
    return None if (lm_eval_tasks or lm_eval_include) else "all"


def batch_size_value(value: str | int | None) -> int | str | None:
    """A positive int, ``auto``, or None (the device's default); anything else is a one-line error."""
    if value is None or value == "auto":
        return value
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text.isdigit() and int(text) > 0 and not isinstance(value, bool):
        return int(text)
    raise UserError(f"batch_size takes a positive whole number or 'auto', got {value!r}")
