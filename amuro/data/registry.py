"""The dataset catalogue: a registry of specs, name resolution and the relation of eval sets to train sets."""

from __future__ import annotations

from collections.abc import Iterable

from amuro.core.errors import UserError, unknown
from amuro.data.spec import TASK_KINDS, DatasetSpec

CATALOGUE: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    if spec.task not in TASK_KINDS:
        raise unknown(f"task family of dataset {spec.name}", spec.task, TASK_KINDS)
    if spec.name in CATALOGUE and CATALOGUE[spec.name] != spec:
        raise UserError(f"dataset {spec.name!r} is already in the catalogue: pick another name")
    CATALOGUE[spec.name] = spec
    return spec


def get(name: str) -> DatasetSpec:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise unknown("dataset", name, CATALOGUE) from None


def resolve(
    selection: str | Iterable[str], *, offline_only: bool = False, trainable: bool | None = None
) -> list[DatasetSpec]:
    """Dataset names, task families or ``all`` (comma-separated or a list) -> specs, in catalogue order; a task
    family or ``all`` leaves out what cannot be scored (chat mixtures, datasets without a test split)."""
    words = [w.strip() for w in (selection.split(",") if isinstance(selection, str) else selection)]
    words = [w for w in words if w]
    if not words:
        raise UserError("no datasets selected: name datasets, task families, or 'all'")
    chosen: dict[str, DatasetSpec] = {}
    for word in words:
        if word == "all":
            matches = list(CATALOGUE.values())
            if offline_only:
                matches = [s for s in matches if s.offline]
        elif word in CATALOGUE:
            matches = [CATALOGUE[word]]
        elif word in TASK_KINDS:
            matches = [s for s in CATALOGUE.values() if s.task == word and (s.offline or not offline_only)]
        else:
            raise unknown("dataset or task family", word, [*CATALOGUE, *TASK_KINDS, "all"])
        for spec in matches:
            if word == "all" or word in TASK_KINDS:
                if spec.kind == "chat" or "test" not in spec.splits:
                    continue
                if word == "all" and spec.task == "preference":  # scored where named, or in-domain after DPO
                    continue
                if trainable is not None and spec.trainable != trainable:
                    continue
            chosen[spec.name] = spec
    return list(chosen.values())


def relation(train_dataset: str | None, eval_dataset: str) -> str:
    """``base`` for untuned models; else in-domain, out-of-domain (same task) or cross-task."""
    if train_dataset in (None, "", "none"):
        return "base"
    evaluated = get(eval_dataset)
    trained = CATALOGUE.get(train_dataset)
    if evaluated.name == train_dataset or train_dataset in evaluated.in_domain_of:
        return "in-domain"
    if trained is not None and trained.task == evaluated.task:
        return "out-of-domain"
    return "cross-task"
