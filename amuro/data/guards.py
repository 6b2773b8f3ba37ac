"""Validity guards run on every loaded split before anything is trained or scored.

Each refuses, with one line naming the dataset, the split, what was found and the fix: an empty split;
rows whose template slots, target, choices or messages are missing or blank; gold labels outside the
label set (GLUE's hidden test labels are ``-1``); an evaluation split that holds a single class (a
scorer would reward a constant answer, as when hidden labels are all read as "no").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from amuro.core.errors import UserError
from amuro.data.rows import MISSING, Reading
from amuro.data.spec import DatasetSpec

_SHOWN = 240


def where(spec: DatasetSpec, split: str) -> str:
    return f"dataset {spec.name} split {split!r}"


def _counts(counter: Counter) -> str:
    shown = ", ".join(f"{key!r}: {n}" for key, n in counter.most_common(8))
    return "{" + shown + (", ..." if len(counter) > 8 else "") + "}"


def _row_text(row: Mapping) -> str:
    text = repr(dict(row))
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "...}"


def require_rows(spec: DatasetSpec, split: str, count: int) -> None:
    if count == 0:
        raise UserError(f"{where(spec, split)} is empty: point the spec at a split with rows")


def refuse_blank_rows(
    spec: DatasetSpec, split: str, total: int, offenders: Sequence[tuple[int, Mapping, Reading]]
) -> None:
    """Rows whose prompt or reference would be missing or blank."""
    if not offenders:
        return
    index, row, reading = offenders[0]
    raise UserError(
        f"{where(spec, split)}: {len(offenders)} of {total} rows have missing or empty fields "
        f"({', '.join(reading.blank)}); first offending row #{index}: {_row_text(row)}; fix the field "
        f"mapping or the data, or use a spec whose preprocess leaves such rows out"
    )


def refuse_bad_gold(spec: DatasetSpec, split: str, readings: Sequence[Reading], *, evaluation: bool) -> None:
    """Gold labels outside the label set, and (for evaluation splits) a single class."""
    if spec.kind not in ("classification", "multiple_choice") or not readings:
        return
    raw = Counter(_plain(r.raw_gold) for r in readings)
    outside = [r for r in readings if r.example.gold is None]
    if outside:
        allowed = ", ".join(spec.labels) if spec.kind == "classification" else "an index into the choices"
        mapping = f" through label_map {dict(spec.label_map)}" if spec.label_map else ""
        raise UserError(
            f"{where(spec, split)}: {len(outside)} of {len(readings)} gold labels fall outside the label set "
            f"({allowed}){mapping}; raw label counts {_counts(raw)}; the split's labels are hidden or "
            f"unmapped: use a labelled split for this role (e.g. validation) or fix label_map"
        )
    if evaluation and spec.kind == "classification" and len(readings) > 1:
        words = Counter(r.example.target for r in readings)
        if len(words) == 1:
            raise UserError(
                f"{where(spec, split)} holds a single class: label counts {_counts(words)} (raw "
                f"{_counts(raw)}); a constant answer would score 100% or 0%: use a labelled split with every "
                f"class (GLUE test splits hide their labels; score validation instead)"
            )


def _plain(value: object) -> object:
    if value is MISSING:
        return "<missing>"
    return value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)
