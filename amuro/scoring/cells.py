"""Contract-tagged eval runs: one MLflow run per (model, dataset, prompt format, shots), found or made.

``evaluate_target`` is the one way the suite scores a model: ``pretrain-eval`` calls it for base
checkpoints, ``finetune`` and ``crosseval`` for tuned models. Each cell is a tracked run done once (its
run key covers everything that changes the scores, never the batch size); the model is loaded once, and
only when some cell has work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import mlflow
import torch
from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient

from amuro.core import tracking
from amuro.core.errors import UserError, unknown
from amuro.core.ownership import check_owner
from amuro.core.precision import resolve_dtype
from amuro.core.protocol import DEFAULT_PROTOCOL
from amuro.core.settings import EvalSettings
from amuro.core.versions import version_tags
from amuro.data import FORMATS, DatasetSpec
from amuro.models.precision import on_device, torch_dtype
from amuro.models.targets import EvalTarget
from amuro.scoring.cell_items import demos_and_items, scored_split  # noqa: F401  (used from here)
from amuro.scoring.cell_scoring import ItemResult
from amuro.scoring.metrics import bootstrap
from amuro.scoring.resume import ScoredSoFar
from amuro.scoring.scorable import ScorableDataset, scorable
from amuro_contract import Artifact

PREDICTIONS = Artifact.PREDICTIONS
COLUMNS = (
    "item_id",
    "prediction",
    "reference",
    "item_score",
    "options",
    "option_loglik",
    "option_loglik_norm",
    "prompt_hash",
    "demo_ids",
)
Cell = tuple[ScorableDataset, str]


def select_cells(
    specs: Sequence[DatasetSpec | ScorableDataset], formats: str | Sequence[str], protocol: str = DEFAULT_PROTOCOL
) -> list[Cell]:
    """(dataset, format) pairs: ``all`` formats of each dataset, or the named ones each dataset has (an lm-eval
    task has one, ``default``: its own prompt; under the study's protocol its datasets have its formats)."""
    datasets = [scorable(spec, protocol) for spec in specs]
    words = [w.strip() for w in (formats.split(",") if isinstance(formats, str) else formats) if w.strip()]
    if not words:
        raise UserError("no prompt formats selected: name formats (default, instruct, io) or 'all'")
    known = {f for dataset in datasets for f in dataset.formats} | set(FORMATS)
    for word in words:
        if word != "all" and word not in known:
            raise unknown("prompt format", word, [*known, "all"])
    cells = []
    for dataset in datasets:
        own = dataset.formats
        chosen = own if "all" in words else tuple(f for f in words if f in own)
        cells += [(dataset, fmt) for fmt in chosen]
    if not cells:
        raise UserError(f"none of the selected datasets has prompt format(s) {', '.join(words)}: try 'default'")
    return cells


def check_cells(cells: Sequence[Cell], settings: EvalSettings) -> None:
    """Fail early, before any scoring, on datasets that cannot be prompted with these settings."""
    for dataset in {dataset.name: dataset for dataset, _ in cells}.values():
        scorable(dataset, settings.protocol).check(settings)


def cell_key(target: EvalTarget, spec: DatasetSpec | ScorableDataset, fmt: str, settings: EvalSettings) -> str:
    dataset = scorable(spec, settings.protocol)
    return tracking.run_key(
        "eval",
        {
            "model": target.model,
            "revision": target.revision,
            "step": target.step,
            "tuning": target.tuning,
            "train_dataset": target.train_dataset,
            "source_run_id": target.source_run_id or "",
            "target_seed": target.seed,
            "reference": dict(target.reference),
            "eval_dataset": dataset.name,
            "format": fmt,
            **dataset.key_settings(fmt, settings),
        },
        dataset.result_versions(settings),
    )


def cell_tags(
    target: EvalTarget, spec: DatasetSpec | ScorableDataset, fmt: str, settings: EvalSettings
) -> dict[str, str]:
    dataset = scorable(spec, settings.protocol)
    tags = tracking.contract_tags(
        kind="eval",
        **target.base_tags(),
        tuning=target.tuning,
        train_dataset=target.train_dataset,
        eval_dataset=dataset.name,
        task=dataset.task,
        relation=dataset.relation(target.train_dataset),
        format=fmt,
        shots=dataset.shots(settings),
        metric=dataset.metric,
        seed=target.seed,
        source_run_id=target.source_run_id,
        train_seed=target.train_seed,
        protocol=settings.protocol,
    )
    tags.update({tracking.PREFIX + name: value for name, value in target.reference.items()})
    tags.update(version_tags("eval", dataset.result_versions(settings)))
    return tags


def evaluate_target(
    experiment_id: str,
    parent_run_id: str | None,
    target: EvalTarget,
    cells: Sequence[tuple[DatasetSpec | ScorableDataset, str]],
    settings: EvalSettings,
) -> list[tracking.TrackedRun]:
    """Score every (dataset, format) cell for one model as contract-tagged eval runs (each done once);
    relation = tasks.relation(target.train_dataset, spec.name); loads the model once, only if needed."""
    loaded: list[tuple] = []
    model_ids: list[str] = []
    done = []
    for spec, fmt in cells:
        spec = scorable(spec, settings.protocol)
        name = f"eval {target.run_label} → {spec.name} [{fmt}]"
        key = cell_key(target, spec, fmt, settings)

        def score(run: tracking.TrackedRun, spec=spec, fmt=fmt) -> None:
            if not loaded:
                loaded.append(_loaded(target, settings))
            if not model_ids:
                model_ids.append(_model_reference(experiment_id, target, run.run_id))
            known = ScoredSoFar(run.run_id, resumed=run.resumed)
            try:
                _score_and_log(*loaded[0], spec, fmt, settings, model_ids[0], known)
            except BaseException:
                known.save()  # an interrupted cell keeps what it scored for the next attempt
                raise

        done.append(
            tracking.run_once(
                experiment_id,
                key,
                cell_tags(target, spec, fmt, settings),
                name,
                score,
                parent_run_id=parent_run_id,
                system_metrics=True,
                resumable=True,
            )
        )
    return done


def _loaded(target: EvalTarget, settings: EvalSettings) -> tuple:
    """The target's model in the scoring dtype, on the GPU when there is one."""
    dtype = resolve_dtype(settings.dtype, settings.protocol, "score")
    model, tokenizer = target.load(dtype=torch_dtype(dtype))
    return on_device(model, dtype), tokenizer


def _log_params(params: dict[str, object], known: ScoredSoFar, tags: dict[str, str] | None = None) -> None:
    """Params (and tags, in the same request); a resumed run's params stay as its first attempt logged them
    (MLflow params never change)."""
    if known.resumed:
        have = MlflowClient().get_run(known.run_id).data.params
        params = {name: value for name, value in params.items() if name not in have}
    logged = [Param(name, tracking.tag_value(value)) for name, value in params.items()]
    MlflowClient().log_batch(
        known.run_id, params=logged, tags=[RunTag(name, value) for name, value in (tags or {}).items()]
    )


def _score_and_log(
    model, tokenizer, spec: ScorableDataset, fmt: str, settings: EvalSettings, model_id: str, known: ScoredSoFar
) -> None:
    common = {**settings.params(), "threads": torch.get_num_threads()}
    started = time.perf_counter()
    _log_params(spec.params(fmt, settings, common), known, {tracking.Tag.MODEL_ID: model_id})
    spec.log_inputs(fmt, settings)
    results, prompt, scored_params = spec.score(model, tokenizer, fmt, settings, known)
    if scored_params:
        _log_params(scored_params, known)
    elapsed = time.perf_counter() - started
    if prompt:
        mlflow.log_text(prompt, Artifact.PROMPT)
    if not results:
        raise UserError(f"{spec.name} has no items to score: check its test split")
    estimate = bootstrap([r.item_score for r in results], resamples=settings.bootstrap, seed=settings.seed)
    check_owner(mlflow.active_run().info.run_id)
    mlflow.log_metrics(estimate.metrics(), model_id=model_id)
    mlflow.log_metrics(
        {
            "examples_per_second": len(results) / max(elapsed, 1e-9),
            "answers_resumed": known.loaded,
            "answers_computed": known.scored,
        }
    )
    _log_predictions_once(results)
    print(
        f"{spec.name} [{fmt}]: {spec.metric} {estimate.score:.3f} "
        f"[{estimate.ci_low:.3f}, {estimate.ci_high:.3f}] on {estimate.n} items"
    )


def _log_predictions_once(results: Sequence[ItemResult]) -> None:
    """``predictions.json`` of the active run: ``log_table`` appends to a table already there, so a resumed
    run whose earlier attempt logged it (every item, then died before the run ended) keeps that one."""
    run_id = mlflow.active_run().info.run_id
    if any(item.path == PREDICTIONS for item in MlflowClient().list_artifacts(run_id)):
        return
    mlflow.log_table(predictions_table(results), artifact_file=PREDICTIONS)


def predictions_table(results: Sequence[ItemResult]) -> dict[str, list]:
    return {column: [_cell_value(getattr(r, column)) for r in results] for column in COLUMNS}


def _cell_value(value):
    return list(value) if isinstance(value, tuple) else value


def _model_reference(experiment_id: str, target: EvalTarget, run_id: str) -> str:
    """A LoggedModel (no weights copied) naming where the evaluated weights come from; reused across runs."""
    ref_key = tracking.run_key(
        "model-reference",
        {
            "model": target.model,
            "revision": target.revision,
            "tuning": target.tuning,
            "train_dataset": target.train_dataset,
            "source_run_id": target.source_run_id or "",
            "reference": dict(target.reference),
        },
    )
    found = mlflow.search_logged_models(
        experiment_ids=[experiment_id],
        output_format="list",
        max_results=1,
        filter_string=tracking.tag_filter({tracking.Tag.REF_KEY: ref_key}),
    )
    if found:
        return found[0].model_id
    params = {
        "model": target.model,
        "revision": target.revision,
        "step": str(target.step),
        "tokens": tracking.tag_value(target.tokens),
        "tuning": target.tuning,
        "train_dataset": target.train_dataset,
        **target.reference,
    }
    logged = mlflow.create_external_model(
        name=_model_name(target.label),
        source_run_id=target.source_run_id or run_id,
        experiment_id=experiment_id,
        tags={
            tracking.Tag.REF_KEY: ref_key,
            tracking.Tag.MODEL: target.model,
            tracking.Tag.REVISION: target.revision,
            tracking.Tag.REFERENCE: json.dumps(dict(target.reference)),
        },
        params=params,
        model_type="checkpoint" if target.tuning == "none" else "tuned",
    )
    return logged.model_id


def _model_name(label: str) -> str:
    # LoggedModel names may not contain '/', ':' and a few others; keep letters, digits and -_.@+
    return "".join(ch if ch.isalnum() or ch in "-_.@+" else "-" for ch in label)
