"""Declarative dataset specs and the normalized example every loader produces."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

TASK_KINDS = {
    "nli": "classification",
    "paraphrase": "classification",
    "summary": "generation",
    "qgen": "generation",
    "mc": "multiple_choice",
    "chat": "chat",
    "preference": "multiple_choice",  # a prompt and two answers, the chosen one first-class (gold)
}
ROLES = ("train", "validation", "test")
PARQUET_EXPORT = "refs/convert/parquet"  # the hub's parquet conversion of a repository, a branch of its own


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the suite needs to load, prompt and score one dataset.

    ``splits`` maps a role (``train`` for tuning and demonstrations, ``validation`` for search, ``test``
    for scoring) to the source's split name. ``fields`` maps the task's template slots (``premise``,
    ``document``...) and ``target`` onto source columns; ``label_map`` maps raw label values (as strings)
    onto label words. ``in_domain_of`` lists the training sets this set is in-domain for.
    ``preprocess`` names a row function (``amuro.data.rows.PREPROCESSORS``) applied to each source row
    before the field mapping, for columns derived from several others.

    ``revision`` is the hub revision read: a commit pins the entry, a branch (``main`` when empty) follows it.
    ``parquet_export`` reads the hub's parquet conversion (``refs/convert/parquet``, one folder per config):
    ``revision`` is then that branch, or one of its commits.
    """

    name: str
    task: str
    source: str = "synthetic"
    path: str = ""
    config: str | None = None
    revision: str | None = None
    parquet_export: bool = False
    file_format: str | None = None
    splits: Mapping[str, str] = field(default_factory=lambda: _frozen({r: r for r in ROLES}))
    fields: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    labels: tuple[str, ...] = ()
    label_map: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    templates: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    in_domain_of: tuple[str, ...] = ()
    trainable: bool = False
    train_size: int | None = 6000
    subsample: float | None = None
    description: str = ""
    notes: str = ""
    preprocess: str | None = None
    formats: tuple[str, ...] = ()  # the prompt formats it is scored in; empty: every format of its task

    def __post_init__(self) -> None:
        for name in ("splits", "fields", "label_map", "templates"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "in_domain_of", tuple(self.in_domain_of))
        object.__setattr__(self, "formats", tuple(self.formats))
        if self.revision == PARQUET_EXPORT:
            object.__setattr__(self, "parquet_export", True)

    @property
    def kind(self) -> str:
        return TASK_KINDS[self.task]

    @property
    def metric(self) -> str:
        if self.task == "preference":
            return "reward_accuracy"
        return "rougeL" if self.kind == "generation" else "accuracy"

    @property
    def offline(self) -> bool:
        return self.source != "hub"


@dataclass(frozen=True)
class Example:
    """One item, normalized: template slots, the reference, and for choice tasks the options and gold index."""

    item_id: str
    slots: Mapping[str, str]
    target: str
    choices: tuple[str, ...] = ()
    gold: int | None = None
    messages: tuple[Mapping[str, str], ...] = ()
