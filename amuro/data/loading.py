"""Load a split of a catalogue dataset as normalized examples, checked by the validity guards."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from functools import lru_cache

from amuro.core.errors import UserError
from amuro.core.protocol import DEFAULT_PROTOCOL, protocol
from amuro.data import guards, synthetic
from amuro.data.rows import RowReader, is_blank, lookup
from amuro.data.spec import DatasetSpec, Example

TRAIN_SEED = 42
EVALUATION_ROLES = ("validation", "test")

log = logging.getLogger(__name__)


def load_examples(
    spec: DatasetSpec, role: str, *, limit: int | None = None, protocol: str = DEFAULT_PROTOCOL
) -> list[Example]:
    """The examples of one role (``train``, ``validation``, ``test``) of a dataset.

    Training splits are subsampled as in the study: a shuffle seeded with 42, then ``spec.train_size``
    examples (or the fraction ``spec.subsample``); under ``--protocol study`` exactly the rows ``datasets``'
    ``shuffle(seed=42).select(range(n))`` picks. Every split passes the guards of ``amuro.data.guards``
    before it is returned; training rows with missing or blank fields are skipped, evaluation splits with
    such rows are refused.
    """
    if role not in spec.splits:
        raise UserError(f"dataset {spec.name} has no {role} split: its splits are {', '.join(spec.splits)}")
    split = spec.splits[role]
    if spec.source == "synthetic":
        task, domain = spec.path.split("/")
        examples = list(_synthetic_split(task, domain, split))
        guards.require_rows(spec, split, len(examples))
        size = sample_size(spec, role, len(examples), protocol)
        if size is not None:
            examples = [examples[i] for i in shuffled(len(examples), protocol)[:size]]
    else:
        examples = _read_examples(spec, role, split, protocol)
    return examples[:limit] if limit else examples


@lru_cache(maxsize=32)
def _synthetic_split(task: str, domain: str, split: str) -> tuple[Example, ...]:
    """A synthetic split, generated once per process (every cell of a model and every model reuse it)."""
    if task == "instruct":
        from amuro.data.instruct import mixture

        return tuple(mixture(domain, split))
    if task == "prefs":
        from amuro.data.preferences import synthetic_pairs

        return synthetic_pairs(domain, split)
    return tuple(synthetic.generate(task, domain, split))


def sample_size(spec: DatasetSpec, role: str, total: int, protocol: str = DEFAULT_PROTOCOL) -> int | None:
    """How many training examples to draw (``None``: keep the split whole)."""
    if role != "train":
        return None
    if spec.subsample:
        if study_subset(protocol):
            return max(1, int(total * spec.subsample))
        return max(1, round(spec.subsample * total))
    if spec.train_size and total > spec.train_size:
        return spec.train_size
    return None


def study_subset(name: str) -> bool:
    return protocol(name).train_subset == "datasets-shuffle"


def shuffled(total: int, protocol_name: str = DEFAULT_PROTOCOL) -> list[int]:
    """Row indices in the training order: ``datasets.Dataset.shuffle(seed=42)``'s permutation (NumPy's
    ``default_rng(42)``) under the study's protocol, a ``random.Random(42)`` shuffle under amuro's."""
    if study_subset(protocol_name):
        import numpy as np

        return np.random.default_rng(TRAIN_SEED).permutation(total).tolist()
    order = list(range(total))
    random.Random(TRAIN_SEED).shuffle(order)
    return order


def _read_examples(spec: DatasetSpec, role: str, split: str, protocol_name: str) -> list[Example]:
    from amuro.data.sources import read_split

    rows = read_split(spec, split)
    total = len(rows)
    guards.require_rows(spec, split, total)
    reader = RowReader(spec)
    size = sample_size(spec, role, total, protocol_name)
    indexed = ((i, rows[i]) for i in shuffled(total, protocol_name)) if size is not None else enumerate(rows)
    ids = _ItemIds(spec, split)
    readings, offenders = [], []
    for index, row in indexed:
        prepared = reader.prepare(row)
        if prepared is None:
            continue
        reading = reader.read(prepared, ids.of(prepared, index))
        if reading.blank:
            offenders.append((index, prepared, reading))
            continue
        readings.append(reading)
        if size is not None and len(readings) == size:
            break
    evaluation = role in EVALUATION_ROLES
    if evaluation:
        guards.refuse_blank_rows(spec, split, total, offenders)
    elif offenders:
        log.warning(
            "dataset %s split %r: skipped %d training rows with missing or empty fields (%s)",
            spec.name,
            split,
            len(offenders),
            ", ".join(offenders[0][2].blank),
        )
    if not readings:
        if offenders:
            guards.refuse_blank_rows(spec, split, total, offenders)
        raise UserError(f"dataset {spec.name} split {split!r}: its preprocess ({spec.preprocess}) left no rows")
    guards.refuse_bad_gold(spec, split, readings, evaluation=evaluation)
    return [r.example for r in readings]


class _ItemIds:
    """Stable, unique item ids: the source's id column, else ``<split>-<row index>``."""

    def __init__(self, spec: DatasetSpec, split: str) -> None:
        self.path = spec.fields.get("id")
        self.split = split
        self.seen: set[str] = set()

    def of(self, row: Mapping, index: int) -> str:
        value = lookup(row, self.path) if self.path else None
        item_id = f"{self.split}-{index}" if is_blank(value) else str(value)
        if item_id in self.seen:
            item_id = f"{item_id}-{index}"
        self.seen.add(item_id)
        return item_id
