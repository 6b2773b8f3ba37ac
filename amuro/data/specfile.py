"""Datasets declared in YAML or JSON spec files (``--dataset-spec my.yaml``), added to the catalogue.

A file holds one dataset (a mapping), a list of them, or ``{datasets: [...]}``; each entry takes the
fields of ``DatasetSpec`` (see docs/datasets.md). Relative local paths are read from the spec file's
folder. Loading the same file twice is harmless; a name already taken by a different dataset is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import fields as dataclass_fields
from pathlib import Path

import yaml

from amuro.core.errors import UserError, unknown
from amuro.data.provenance import apply_revisions
from amuro.data.registry import register
from amuro.data.rows import check_fields, raw_key
from amuro.data.spec import ROLES, TASK_KINDS, DatasetSpec

KEYS = tuple(f.name for f in dataclass_fields(DatasetSpec))
SPEC_SOURCES = ("local", "hub")


def load_spec_option(option: str | None, revisions: str | None = None) -> list[DatasetSpec]:
    """``--dataset-spec``: comma-separated spec files (or nothing), registered before datasets are named; then
    ``--dataset-revision``'s pins (``amuro.data.provenance.apply_revisions``), which may name their datasets."""
    specs = load_spec_files(option.split(",")) if option else []
    apply_revisions(revisions)
    return specs


def load_spec_files(paths: Iterable[str | Path]) -> list[DatasetSpec]:
    """Register the datasets of each file; returns their specs in file order."""
    specs: list[DatasetSpec] = []
    for path in paths:
        if str(path).strip():
            specs += load_spec_file(Path(str(path).strip()))
    return specs


def load_spec_file(path: Path) -> list[DatasetSpec]:
    entries = _entries(path, _parse(path))
    specs = [spec_from_entry(entry, path, number) for number, entry in enumerate(entries, start=1)]
    return [register(spec) for spec in specs]


def _parse(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read dataset spec file {path} ({exc.strerror})") from None
    try:
        return json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"dataset spec file {path} line {exc.lineno} is not valid JSON ({exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise UserError(
            f"dataset spec file {path}{line} is not valid YAML ({getattr(exc, 'problem', None) or exc})"
        ) from None


def _entries(path: Path, document: object) -> list[Mapping]:
    if isinstance(document, Mapping) and "datasets" in document:
        document = document["datasets"]
    entries = [document] if isinstance(document, Mapping) else document
    if not isinstance(entries, list) or not entries or not all(isinstance(e, Mapping) for e in entries):
        raise UserError(
            f"dataset spec file {path} must hold a dataset (a mapping with name, task, path...), "
            f"a list of them, or 'datasets:' with a list"
        )
    return entries


def spec_from_entry(entry: Mapping, path: Path, number: int = 1) -> DatasetSpec:
    """One validated spec from a file entry."""
    where = f"dataset spec file {path} entry {number}"
    for key in entry:
        if key not in KEYS:
            raise unknown(f"key in {where}", str(key), KEYS)
    for key in ("name", "task", "path"):
        if not entry.get(key):
            raise UserError(f"{where} has no {key}: every dataset needs name, task and path")
    name = str(entry["name"])
    where = f"{where} ({name})"
    if entry["task"] not in TASK_KINDS:
        raise unknown(f"task in {where}", str(entry["task"]), TASK_KINDS)
    source = entry.get("source", "local")
    if source not in SPEC_SOURCES:
        raise unknown(f"source in {where}", str(source), SPEC_SOURCES)
    settings = dict(entry)
    settings["source"] = source
    settings["path"] = _located(str(entry["path"]), path) if source == "local" else str(entry["path"])
    settings["fields"] = {str(k): _field(v) for k, v in (entry.get("fields") or {}).items()}
    settings["label_map"] = {raw_key(k): str(v) for k, v in (entry.get("label_map") or {}).items()}
    settings["labels"] = tuple(str(label) for label in entry.get("labels") or ())
    settings["in_domain_of"] = tuple(str(n) for n in entry.get("in_domain_of") or ())
    settings["splits"] = {str(k): str(v) for k, v in (entry.get("splits") or {r: r for r in ROLES}).items()}
    _check(settings, where)
    spec = DatasetSpec(**settings)
    check_fields(spec)
    return spec


def _check(settings: dict, where: str) -> None:
    bad_roles = sorted(set(settings["splits"]) - set(ROLES))
    if bad_roles:
        raise UserError(f"{where}: splits has roles {', '.join(bad_roles)}: roles are {', '.join(ROLES)}")
    if TASK_KINDS[settings["task"]] == "classification" and len(settings["labels"]) < 2:
        raise UserError(f"{where}: a {settings['task']} dataset needs labels (at least two label words)")
    unmapped = sorted(set(settings["label_map"].values()) - set(settings["labels"]))
    if unmapped:
        raise UserError(f"{where}: label_map maps onto {', '.join(unmapped)}, which are not in labels")
    size = settings.get("train_size", 6000)
    if size is not None and (not isinstance(size, int) or size < 1):
        raise UserError(f"{where}: train_size must be a positive integer or null, got {size!r}")
    fraction = settings.get("subsample")
    if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise UserError(f"{where}: subsample must be a fraction in (0, 1], got {fraction!r}")


def _located(value: str, spec_file: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (spec_file.parent / path).resolve())


def _field(value: object) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
