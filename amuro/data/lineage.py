"""Dataset lineage: the exact rows a run used, as an MLflow dataset input.

Eval runs log the scored items (context ``eval``) and their demonstrations (``demonstrations``); finetune
runs log the training examples (``train``). The dataset's name is its catalogue name and its digest a hash
of the normalized rows, after subsampling, so two runs with the same name and digest used the same rows and
``search_runs`` can select runs by either (``dataset.name = 'synth-nli' and dataset.digest = '...'``).
Hub datasets are recorded with ``mlflow.data.from_huggingface`` (hub id, config, split, and the commit read);
local and synthetic ones with ``mlflow.data.from_pandas`` and their source path. Each input's tags say exactly
what was read (``amuro.data.sources.what_was_read``): ``commit`` of a hub read, or ``path`` and
``content_digest`` of a local file or copy (with the copy's ``commit`` when it was downloaded).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence

import mlflow
from mlflow.exceptions import MlflowException

from amuro.data.spec import DatasetSpec, Example
from amuro_contract import EVAL_CONTEXT

CONTEXTS = (EVAL_CONTEXT, "train", "demonstrations")
SYNTHETIC_SOURCE = "amuro/data/synthetic.py"
INPUT_ATTEMPTS = 4
# How stores word the refusal of a second row with the same key (sqlite, PostgreSQL, MySQL).
_DUPLICATE_ROW = ("unique constraint", "duplicate key", "duplicate entry")


def rows_digest(examples: Sequence[Example]) -> str:
    """A hash of the normalized rows in order: equal exactly when the same items were used."""
    canonical = json.dumps(
        [dataclasses.asdict(ex) for ex in examples],
        sort_keys=True,
        ensure_ascii=False,
        default=list,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def _records(examples: Sequence[Example]) -> list[dict[str, object]]:
    """One flat record per example (nested fields as JSON text), the table MLflow profiles."""
    records = []
    for ex in examples:
        record: dict[str, object] = {
            "item_id": ex.item_id,
            **{f"slot_{k}": v for k, v in ex.slots.items()},
            "target": ex.target,
        }
        if ex.choices:
            record["choices"] = json.dumps(list(ex.choices), ensure_ascii=False)
            record["gold"] = str(ex.gold)
        if ex.messages:
            record["messages"] = json.dumps([dict(m) for m in ex.messages], ensure_ascii=False)
        records.append(record)
    return records


def source_path(spec: DatasetSpec, split: str) -> str:
    """Where the rows come from: the local file or folder, or the synthetic generator and its task/domain."""
    if spec.source == "synthetic":
        return f"{SYNTHETIC_SOURCE}#{spec.path}/{split}"
    return spec.path.replace("{split}", split)


def as_dataset(spec: DatasetSpec, split: str, examples: Sequence[Example]):
    """The MLflow dataset of these rows of ``spec``'s ``split``, named by the catalogue and digested by rows."""
    from amuro.data.sources import what_was_read

    digest = rows_digest(examples)
    records = _records(examples)
    if spec.source == "hub":
        import datasets
        from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

        from amuro.data.sources import hub_arguments

        source = HuggingFaceDatasetSource(
            path=spec.path,
            config_name=hub_arguments(spec).get("name"),
            data_dir=hub_arguments(spec).get("data_dir"),
            split=split,
            revision=what_was_read(spec, split).get("commit") or spec.revision or "main",
        )
        table = datasets.Dataset.from_list(records) if records else datasets.Dataset.from_dict({"item_id": []})
        return mlflow.data.from_huggingface(table, name=spec.name, digest=digest, source=source)
    import pandas as pd
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json

    # Built directly: resolving a plain path matches two registered local sources and warns about it.
    source = get_dataset_source_from_json(json.dumps({"uri": source_path(spec, split)}), "local")
    return mlflow.data.from_pandas(pd.DataFrame.from_records(records), source=source, name=spec.name, digest=digest)


def log_rows(spec: DatasetSpec, split: str, examples: Sequence[Example], context: str) -> str:
    """Record the rows as an input of the active run in ``context``; returns their digest."""
    return log_row_sets(spec, [(split, examples, context)])[0]


def log_row_sets(spec: DatasetSpec, row_sets: Sequence[tuple[str, Sequence[Example], str]]) -> list[str]:
    """Record several (split, rows, context) sets of one dataset as inputs of the active run, in one request;
    returns their digests."""
    for _, _, context in row_sets:
        if context not in CONTEXTS:
            raise ValueError(f"dataset context {context!r} is not one of {CONTEXTS}")
    datasets = [as_dataset(spec, split, examples) for split, examples, _ in row_sets]
    _log_inputs(
        datasets=datasets,
        contexts=[context for _, _, context in row_sets],
        tags_list=[
            {"split": split, "rows": str(len(examples)), **_read_tags(spec, split)} for split, examples, _ in row_sets
        ],
    )
    return [dataset.digest for dataset in datasets]


def _read_tags(spec: DatasetSpec, split: str) -> dict[str, str]:
    from amuro.data.sources import what_was_read

    return {name: value for name, value in what_was_read(spec, split).items() if value}


def _log_inputs(**inputs) -> None:
    """``mlflow.log_inputs``, tried again when another run registered the same dataset at the same moment: the
    store looks a dataset up, then inserts it, so two runs logging a new dataset at once can collide (the
    refused request changed nothing; the next one finds the dataset and links it)."""
    for attempt in range(1, INPUT_ATTEMPTS + 1):
        try:
            mlflow.log_inputs(**inputs)
            return
        except MlflowException as exc:
            if attempt == INPUT_ATTEMPTS or not any(words in str(exc).lower() for words in _DUPLICATE_ROW):
                raise
            time.sleep(0.05 * attempt)


def log_hub_documents(
    name: str,
    docs,
    *,
    path: str,
    config: str | None,
    split: str,
    revision: str | None,
    data_files=None,
    context: str = "eval",
) -> str:
    """Record rows of a Hugging Face ``datasets.Dataset`` read by another harness (lm-eval) as an input of the
    active run, digested by their content; returns the digest."""
    import datasets
    from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

    if not isinstance(docs, datasets.Dataset):  # a task's processed documents may be a plain list
        docs = datasets.Dataset.from_list(list(docs))
    canonical = json.dumps(list(docs), sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:20]
    source = HuggingFaceDatasetSource(
        path=path, config_name=config, split=split, revision=revision, data_files=data_files
    )
    dataset = mlflow.data.from_huggingface(docs, name=name, digest=digest, source=source)
    _log_inputs(datasets=[dataset], contexts=[context], tags_list=[{"split": split, "rows": str(len(docs))}])
    return digest
