"""Where a split's rows come from: the Hugging Face hub, a local copy of a hub dataset, or local files.

A hub entry reads a local copy when one exists under the data folder (``AMURO_DATA_DIR``, default
``$AMURO_HOME/datasets``), at ``<data folder>/<catalogue name>`` or ``<data folder>/<hub id>``: either a
snapshot of the hub repository (the same ``datasets.load_dataset`` call then reads the folder instead of
the hub) or a ``save_to_disk`` folder. Local entries read a ``save_to_disk`` folder, a folder in the hub
layout, a folder of ``<split>.jsonl|json|csv|parquet`` files, or one file (``{split}`` in the path is
replaced by the split name).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from amuro.core.errors import UserError
from amuro.core.paths import data_dir
from amuro.data import provenance
from amuro.data.spec import PARQUET_EXPORT, DatasetSpec

FILE_FORMATS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
FOLDER_FORMATS = ("disk", "hub")

Rows = Sequence[Mapping]


def local_copy(spec: DatasetSpec) -> Path | None:
    """The local copy of a hub dataset, if one is in the data folder."""
    if spec.source != "hub":
        return None
    for candidate in (data_dir() / spec.name, data_dir() / spec.path):
        if candidate.is_dir():
            return candidate
    return None


_READ: dict[tuple[str, str], dict[str, str]] = {}


def read_split(spec: DatasetSpec, split: str) -> Rows:
    """All rows of one split, as a sequence of mappings (a ``datasets.Dataset`` or a list of dicts); what was
    read is kept for ``what_was_read``."""
    if spec.source == "hub":
        copy = local_copy(spec)
        if copy is not None:
            provenance.check_copy(spec, copy)
            _READ[spec.name, split] = provenance.local_record(spec, copy)
            if _saved_to_disk(copy):
                return _from_disk(spec, copy, split)
            return _load_dataset(spec, str(copy), split, from_hub=False)
        commit = provenance.resolve_commit(spec, hub_offline())
        _READ[spec.name, split] = {"hub": spec.path, "revision": provenance.hub_revision(spec), "commit": commit or ""}
        return _load_dataset(spec, spec.path, split, from_hub=True, commit=commit)
    if spec.source == "local":
        path = Path(spec.path.replace("{split}", split)).expanduser()
        rows = _read_local(spec, split)
        _READ[spec.name, split] = provenance.local_record(spec, path)
        return rows
    raise UserError(f"dataset {spec.name}: source {spec.source!r} is not readable here: use hub or local")


def what_was_read(spec: DatasetSpec, split: str) -> dict[str, str]:
    """The hub commit (``hub``, ``revision``, ``commit``), or the local path and its ``content_digest`` (and the
    copy's ``commit`` when it was downloaded), of the last read of this split; empty for generated data."""
    return dict(_READ.get((spec.name, split), {}))


def hub_arguments(spec: DatasetSpec) -> dict[str, str | None]:
    """How a config is selected: by name, or in the parquet export by its folder (``<config>/<split>/``)."""
    if spec.parquet_export:
        return {"data_dir": spec.config or "default"}
    return {"name": spec.config}


def _load_dataset(spec: DatasetSpec, location: str, split: str, *, from_hub: bool, commit: str | None = None) -> Rows:
    import datasets

    revision = (commit or spec.revision) if from_hub else None
    try:
        return datasets.load_dataset(location, split=split, revision=revision, **hub_arguments(spec))
    except Exception as exc:  # the datasets library raises many types; each becomes one line for the user
        raise UserError(_explain(spec, location, split, exc, from_hub)) from None


def _explain(spec: DatasetSpec, location: str, split: str, exc: Exception, from_hub: bool) -> str:
    message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    copy_hint = f"put a local copy at {data_dir() / spec.name} (see docs/datasets.md)"
    if from_hub and isinstance(exc, ConnectionError):
        return f"dataset {spec.name}: cannot reach the hub for {spec.path} ({message}): {copy_hint} or go online"
    if "scripts are no longer supported" in message:
        return (
            f"dataset {spec.name}: {location} is published with a loading script, which this datasets "
            f"version no longer runs: set revision to {PARQUET_EXPORT} in a spec file or {copy_hint}"
        )
    what = f"{location}" + (f" config {spec.config}" if spec.config else "")
    return f"dataset {spec.name}: loading split {split!r} of {what} failed ({type(exc).__name__}: {message})"


def _saved_to_disk(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def _from_disk(spec: DatasetSpec, folder: Path, split: str) -> Rows:
    import datasets

    try:
        saved = datasets.load_from_disk(str(folder))
    except Exception as exc:  # noqa: BLE001  (any unreadable folder is a user-side problem)
        raise UserError(f"dataset {spec.name}: cannot read the saved dataset {folder} ({exc})") from None
    if isinstance(saved, datasets.DatasetDict):
        if split not in saved:
            raise UserError(f"dataset {spec.name}: {folder} has no split {split!r}: its splits are {', '.join(saved)}")
        return saved[split]
    return saved


def _read_local(spec: DatasetSpec, split: str) -> Rows:
    path = Path(spec.path.replace("{split}", split)).expanduser()
    if not path.exists():
        raise UserError(f"dataset {spec.name}: {path} does not exist: fix path in its spec")
    fmt = spec.file_format
    if path.is_dir():
        if fmt == "disk" or (fmt is None and _saved_to_disk(path)):
            return _from_disk(spec, path, split)
        if fmt != "hub":
            for suffix, suffix_format in FILE_FORMATS.items():
                if (fmt is None or fmt == suffix_format) and (path / f"{split}{suffix}").is_file():
                    return read_file(path / f"{split}{suffix}", suffix_format)
        return _load_dataset(spec, str(path), split, from_hub=False)
    fmt = fmt or FILE_FORMATS.get(path.suffix.lower())
    if fmt not in FILE_FORMATS.values():
        raise UserError(
            f"dataset {spec.name}: cannot tell the format of {path}: set file_format to one of "
            f"{', '.join([*FILE_FORMATS.values(), *FOLDER_FORMATS])}"
        )
    return read_file(path, fmt)


def read_file(path: Path, fmt: str) -> list[dict]:
    """Rows of one JSONL, JSON (a list of objects), CSV/TSV or parquet file."""
    if fmt == "jsonl":
        return read_jsonl(path)
    if fmt == "json":
        rows = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UserError(
                f"{path} must hold a JSON list of objects (one per row); for one object per line name the file .jsonl"
            )
        return rows
    if fmt in ("csv", "tsv"):
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if fmt == "tsv" else ","))
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"{path} line {number} is not valid JSON ({exc.msg} at column {exc.colno}): fix or remove that line"
                ) from None
            if not isinstance(row, dict):
                raise UserError(
                    f"{path} line {number} is a JSON {type(row).__name__}, not an object: write one object per line"
                )
            rows.append(row)
    return rows


def availability(spec: DatasetSpec) -> str:
    """Whether the dataset can be read without a network: ``yes``, ``local copy``, ``cached``, or not."""
    if spec.source == "synthetic":
        return "yes"
    if spec.source == "local":
        first = next(iter(spec.splits.values()), "")
        return "yes" if Path(spec.path.replace("{split}", first)).expanduser().exists() else "missing"
    if local_copy(spec) is not None:
        return "local copy"
    if _in_hf_cache(spec):
        return "cached"
    return "hub (needs network)"


def hub_offline() -> bool:
    """Whether the hub is off limits (``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE``, as the libraries read them)."""
    import datasets
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or datasets.config.HF_HUB_OFFLINE


def _in_hf_cache(spec: DatasetSpec) -> bool:
    from huggingface_hub import constants

    return (Path(constants.HF_HUB_CACHE) / ("datasets--" + spec.path.replace("/", "--")) / "snapshots").is_dir()
