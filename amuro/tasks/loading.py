"""Load a split of a catalogue dataset as normalized examples."""

from __future__ import annotations

import random

from amuro.errors import UserError
from amuro.tasks.spec import DatasetSpec, Example
from amuro.tasks import synthetic

TRAIN_SEED = 42


def load_examples(spec: DatasetSpec, role: str, *, limit: int | None = None) -> list[Example]:
    """The examples of one role (``train``, ``validation``, ``test``) of a dataset.

    Training splits are subsampled as in the study (``spec.train_size`` after a seeded shuffle).
    """
    if role not in spec.splits:
        raise UserError(f"dataset {spec.name} has no {role} split: its splits are {', '.join(spec.splits)}")
    if spec.source == "synthetic":
        task, domain = spec.path.split("/")
        examples = list(synthetic.generate(task, domain, spec.splits[role]))
    else:
        raise UserError(f"dataset {spec.name}: source {spec.source!r} is not supported")
    if not examples:
        raise UserError(f"dataset {spec.name} split {spec.splits[role]} is empty: use a split with rows")
    if role == "train" and spec.train_size and len(examples) > spec.train_size:
        random.Random(TRAIN_SEED).shuffle(examples)
        examples = examples[: spec.train_size]
    return examples[:limit] if limit else examples
