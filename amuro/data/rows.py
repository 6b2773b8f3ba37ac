"""From one source row to an ``Example``: field paths, label words, choices and gold, row preprocessors.

A spec's ``fields`` map names onto source columns. Template slots (``premise``, ``document``...) and
``target`` take a column path (``question``, ``choices.text``, ``Answer.0``: dotted keys and list indices);
a slot without an entry reads the column of the same name. The other names have fixed meanings:

- ``label`` (classification): the raw label column, mapped to a label word by ``label_map`` (keys are the
  raw values as strings); without a map, a value that is already a label word is kept and an integer
  indexes ``labels``.
- ``choices`` (multiple choice): a list column, or several columns separated by commas; default
  ``labels``. The gold choice comes from ``gold`` (an index, or a boolean for two choices),
  ``gold_label`` (a key looked up in the list column ``choice_labels``) or ``gold_text`` (a choice's text).
- ``messages`` (chat): a list of ``{role, content}`` turns.
- ``id``: a stable item id; without it the id is the split name and the row's index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from amuro.core.errors import UserError, unknown
from amuro.data.formats import formats_for, slots_of, template
from amuro.data.spec import DatasetSpec, Example

RESERVED_FIELDS = ("target", "label", "choices", "choice_labels", "gold", "gold_label", "gold_text", "messages", "id")
MISSING = object()


def lookup(row: Mapping, path: str) -> object:
    """The value at a dotted path (``choices.text``, ``Answer.0``), or ``MISSING``."""
    if path in row:
        return row[path]
    value: object = row
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, Sequence) and not isinstance(value, str) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def raw_key(value: object) -> str:
    """A raw label as ``label_map`` spells it: ``1``, ``-1``, ``True``, ``entailment``, ``3.8``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def is_blank(value: object) -> bool:
    return (
        value is MISSING
        or value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 0)
    )


def template_slots(spec: DatasetSpec) -> tuple[str, ...]:
    """Every slot any of the spec's prompt formats fills."""
    seen: dict[str, None] = {}
    for fmt in formats_for(spec):
        seen.update(dict.fromkeys(slots_of(template(spec, fmt))))
    return tuple(seen)


@dataclass(frozen=True)
class Reading:
    """One row read through a spec: the example, the fields that were missing or blank, the raw gold."""

    example: Example
    blank: tuple[str, ...]
    raw_gold: object


class RowReader:
    """Reads source rows of one dataset into examples."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.slots = template_slots(spec)
        self.preprocess = preprocessor(spec.preprocess) if spec.preprocess else None

    def path(self, name: str, default: str | None = None) -> str:
        return self.spec.fields.get(name, default if default is not None else name)

    def prepare(self, row: Mapping) -> Mapping | None:
        """The row after the spec's preprocessor; ``None`` when the preprocessor leaves it out."""
        return self.preprocess(dict(row)) if self.preprocess else row

    def read(self, row: Mapping, item_id: str) -> Reading:
        spec = self.spec
        blank: list[str] = []
        slots: dict[str, str] = {}
        for slot in self.slots:
            value = lookup(row, self.path(slot))
            if is_blank(value):
                blank.append(f"{slot} <- {self.path(slot)}")
            slots[slot] = "" if value is MISSING or value is None else str(value)
        kind = spec.kind
        if kind == "classification":
            raw = lookup(row, self.path("label"))
            word = self.label_word(raw)
            gold = spec.labels.index(word) if word is not None else None
            example = Example(item_id, slots, word or "", choices=spec.labels, gold=gold)
            return Reading(example, tuple(blank), raw)
        if kind == "multiple_choice":
            choices, gold, raw = self.choices_and_gold(row)
            if len(choices) < 2 or any(is_blank(c) for c in choices):
                blank.append(f"choices <- {self.path('choices', ','.join(spec.labels) or 'choices')}")
            target = choices[gold] if gold is not None else ""
            return Reading(Example(item_id, slots, target, choices=choices, gold=gold), tuple(blank), raw)
        if kind == "chat":
            messages = lookup(row, self.path("messages"))
            turns = (
                tuple({"role": str(m["role"]), "content": str(m["content"])} for m in messages)
                if isinstance(messages, Sequence) and not isinstance(messages, str)
                else ()
            )
            if not turns:
                blank.append(f"messages <- {self.path('messages')}")
            reply = next((t["content"] for t in reversed(turns) if t["role"] == "assistant"), "")
            return Reading(Example(item_id, slots, reply, messages=turns), tuple(blank), None)
        target = lookup(row, self.path("target"))
        if is_blank(target):
            blank.append(f"target <- {self.path('target')}")
        return Reading(Example(item_id, slots, "" if is_blank(target) else str(target)), tuple(blank), None)

    def label_word(self, raw: object) -> str | None:
        if raw is MISSING or raw is None:
            return None
        key = raw_key(raw)
        labels = self.spec.labels
        if self.spec.label_map:
            word = self.spec.label_map.get(key)
        elif key in labels:
            word = key
        elif key.isdigit() and int(key) < len(labels):
            word = labels[int(key)]
        else:
            word = None
        return word if word in labels else None

    def choices_and_gold(self, row: Mapping) -> tuple[tuple[str, ...], int | None, object]:
        spec = self.spec
        source = spec.fields.get("choices")
        if source is None:
            choices: tuple[str, ...] = spec.labels
        else:
            paths = list(source) if not isinstance(source, str) else [p.strip() for p in source.split(",")]
            values = [lookup(row, p) for p in paths]
            if len(paths) == 1 and isinstance(values[0], Sequence) and not isinstance(values[0], str):
                values = list(values[0])
            choices = tuple("" if is_blank(v) else str(v) for v in values)
        if "gold_label" in spec.fields:
            raw = lookup(row, spec.fields["gold_label"])
            keys = [raw_key(k) for k in (lookup(row, self.path("choice_labels")) or ())]
            gold = keys.index(raw_key(raw)) if not is_blank(raw) and raw_key(raw) in keys else None
        elif "gold_text" in spec.fields:
            raw = lookup(row, spec.fields["gold_text"])
            gold = choices.index(str(raw)) if not is_blank(raw) and str(raw) in choices else None
        else:
            raw = lookup(row, self.path("gold"))
            key = raw_key(raw) if not is_blank(raw) else ""
            index = {"True": 1, "False": 0}.get(key, int(key) if key.isdigit() else None)
            gold = index if index is not None and index < len(choices) else None
        return choices, gold, raw


# --- row preprocessors ----------------------------------------------------------------------------------
# A preprocessor takes a source row and returns the row with derived columns, or None to leave it out.

PREPROCESSORS: dict[str, Callable[[dict], dict | None]] = {}


def register_preprocessor(name: str) -> Callable:
    def wrap(fn: Callable[[dict], dict | None]) -> Callable[[dict], dict | None]:
        PREPROCESSORS[name] = fn
        return fn

    return wrap


def preprocessor(name: str) -> Callable[[dict], dict | None]:
    if name not in PREPROCESSORS:
        raise unknown("row preprocessor", name, PREPROCESSORS)
    return PREPROCESSORS[name]


@register_preprocessor("drop_blank_rows")
def drop_blank_rows(row: dict) -> dict | None:
    """Leave out rows with any blank text column (sources that hold a few empty documents)."""
    return None if any(isinstance(v, str) and not v.strip() for v in row.values()) else row


def check_fields(spec: DatasetSpec) -> None:
    """Refuse a spec whose field names are neither template slots nor reserved names."""
    known = set(template_slots(spec)) | set(RESERVED_FIELDS)
    extra = sorted(set(spec.fields) - known)
    if extra:
        raise UserError(
            f"dataset {spec.name}: fields {', '.join(extra)} are neither template slots of its "
            f"prompts ({', '.join(template_slots(spec)) or 'none'}) nor one of "
            f"{', '.join(RESERVED_FIELDS)}"
        )
