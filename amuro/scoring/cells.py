"""Contract-tagged eval runs: one MLflow run per (model, dataset, prompt format, shots), found or made.

``evaluate_target`` is the one way the suite scores a model: ``pretrain-eval`` calls it for base
checkpoints, ``finetune`` and ``crosseval`` for tuned models. Each cell is a tracked run done once (its
run key covers everything that changes the scores, never the batch size); the model is loaded once, and
only when some cell has work.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence

import mlflow
import torch
from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient

from amuro.core import tracking
from amuro.core.errors import UserError, unknown
from amuro.core.ownership import check_owner
from amuro.core.protocol import DEFAULT_PROTOCOL, protocol
from amuro.core.settings import EvalSettings
from amuro.data import (
    FORMATS,
    DatasetSpec,
    Example,
    formats_for,
    load_examples,
    relation,
    render,
)
from amuro.data.formats import few_shot_prefix
from amuro.data.lineage import log_row_sets
from amuro.data.protocol import for_protocol
from amuro.models.targets import EvalTarget
from amuro.scoring.cell_scoring import ItemResult, score_cell
from amuro.scoring.lmeval_tasks import FORMAT as LMEVAL_FORMAT
from amuro.scoring.lmeval_tasks import LmEvalTask
from amuro.scoring.metrics import bootstrap
from amuro.scoring.resume import ScoredSoFar

PREDICTIONS = "predictions.json"
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
Dataset = DatasetSpec | LmEvalTask


def _formats(spec: Dataset) -> tuple[str, ...]:
    return (LMEVAL_FORMAT,) if isinstance(spec, LmEvalTask) else formats_for(spec)


def select_cells(
    specs: Sequence[Dataset], formats: str | Sequence[str], protocol: str = DEFAULT_PROTOCOL
) -> list[tuple[Dataset, str]]:
    """(dataset, format) pairs: ``all`` formats of each dataset, or the named ones each dataset has (an lm-eval
    task has one, ``default``: its own prompt; under the study's protocol its datasets have its formats)."""
    specs = [for_protocol(spec, protocol) for spec in specs]
    words = [w.strip() for w in (formats.split(",") if isinstance(formats, str) else formats) if w.strip()]
    if not words:
        raise UserError("no prompt formats selected: name formats (default, instruct, io) or 'all'")
    known = {f for spec in specs for f in _formats(spec)} | set(FORMATS)
    for word in words:
        if word != "all" and word not in known:
            raise unknown("prompt format", word, [*known, "all"])
    cells = []
    for spec in specs:
        own = _formats(spec)
        chosen = own if "all" in words else tuple(f for f in words if f in own)
        cells += [(spec, fmt) for fmt in chosen]
    if not cells:
        raise UserError(f"none of the selected datasets has prompt format(s) {', '.join(words)}: try 'default'")
    return cells


def scored_split(spec: DatasetSpec) -> str:
    return "test" if "test" in spec.splits else "validation"


def demos_and_items(spec: DatasetSpec, settings: EvalSettings) -> tuple[list[Example], list[Example]]:
    """The demonstrations and the scored items of a dataset; ``train`` demos are never among the items."""
    split = scored_split(spec)
    pool = load_examples(spec, split)
    items = pool[: settings.max_examples] if settings.max_examples else pool
    if settings.shots == 0:
        return [], items
    if settings.demo_source == "first-k":
        if settings.shots > len(pool):
            raise UserError(
                f"shots ({settings.shots}) is larger than the {split} split of {spec.name} "
                f"({len(pool)} items): lower --shots"
            )
        return pool[: settings.shots], items
    if "train" not in spec.splits:
        raise UserError(
            f"dataset {spec.name} has no train split to draw demonstrations from: use --demos first-k or --shots 0"
        )
    scored = {ex.item_id for ex in items} | {tuple(sorted(ex.slots.items())) for ex in items}
    train = [
        ex
        for ex in load_examples(spec, "train")
        if ex.item_id not in scored and tuple(sorted(ex.slots.items())) not in scored
    ]
    if settings.shots > len(train):
        raise UserError(
            f"shots ({settings.shots}) is larger than the training split of {spec.name} "
            f"({len(train)} usable examples): lower --shots"
        )
    return random.Random(f"demos/{settings.seed}/{spec.name}").sample(train, settings.shots), items


def check_cells(cells: Sequence[tuple[Dataset, str]], settings: EvalSettings) -> None:
    """Fail early, before any scoring, on datasets that cannot be prompted with these settings."""
    for spec in {spec.name: spec for spec, _ in cells}.values():
        if isinstance(spec, DatasetSpec):
            demos_and_items(spec, settings)


def cell_key(target: EvalTarget, spec: Dataset, fmt: str, settings: EvalSettings) -> str:
    scoring = spec.key_settings(settings) if isinstance(spec, LmEvalTask) else settings.cell_key_settings(spec.kind)
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
            "eval_dataset": spec.name,
            "format": fmt,
            **scoring,
        },
    )


def cell_tags(target: EvalTarget, spec: Dataset, fmt: str, settings: EvalSettings) -> dict[str, str]:
    lmeval = isinstance(spec, LmEvalTask)
    tags = tracking.contract_tags(
        kind="eval",
        model=target.model,
        revision=target.revision,
        step=target.step,
        tokens=target.tokens,
        model_params=target.model_params,
        tuning=target.tuning,
        train_dataset=target.train_dataset,
        eval_dataset=spec.name,
        task=spec.task,
        relation=spec.relation(target.train_dataset) if lmeval else relation(target.train_dataset, spec.name),
        format=fmt,
        shots=spec.shots(settings) if lmeval else settings.shots,
        metric=spec.metric,
        seed=target.seed,
        source_run_id=target.source_run_id,
    )
    tags.update({tracking.PREFIX + name: value for name, value in target.reference.items()})
    tags[tracking.Tag.TRAIN_SEED] = tracking.tag_value(target.train_seed)
    tags[tracking.Tag.PROTOCOL] = settings.protocol
    return tags


def evaluate_target(
    experiment_id: str,
    parent_run_id: str | None,
    target: EvalTarget,
    cells: Sequence[tuple[Dataset, str]],
    settings: EvalSettings,
) -> list[tracking.TrackedRun]:
    """Score every (dataset, format) cell for one model as contract-tagged eval runs (each done once);
    relation = tasks.relation(target.train_dataset, spec.name); loads the model once, only if needed."""
    loaded: list[tuple] = []
    model_ids: list[str] = []
    done = []
    for spec, fmt in cells:
        spec = for_protocol(spec, settings.protocol)
        name = f"eval {target.run_label} → {spec.name} [{fmt}]"
        key = cell_key(target, spec, fmt, settings)

        def score(run: tracking.TrackedRun, spec=spec, fmt=fmt) -> None:
            if not loaded:
                loaded.append(_on_accelerator(*target.load()))
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


def _on_accelerator(model, tokenizer) -> tuple:
    """Score on the GPU when there is one and the loader left the model on the CPU."""
    import torch

    if torch.cuda.is_available() and next(model.parameters()).device.type == "cpu":
        model = model.to("cuda")
    return model, tokenizer


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
    model, tokenizer, spec: Dataset, fmt: str, settings: EvalSettings, model_id: str, known: ScoredSoFar
) -> None:
    model_tag = {tracking.Tag.MODEL_ID: model_id}
    params = {**settings.params(), "threads": torch.get_num_threads()}
    started = time.perf_counter()
    if isinstance(spec, LmEvalTask):
        # The task's output type is its scoring method, logged with the task's own params.
        _log_params({name: value for name, value in params.items() if name != "method"}, known, model_tag)
        spec.log_scored_documents(settings)
        results, prompt, task_params = spec.score(model, tokenizer, settings, known)
        _log_params(task_params, known)
    else:
        demos, items = demos_and_items(spec, settings)
        method = {"classification": settings.method, "multiple_choice": "loglik"}.get(spec.kind, "generate")
        _log_params(
            {
                **params,
                "method": method,
                "split": scored_split(spec),
                "demo_ids": ",".join(d.item_id for d in demos)[:6000],
            },
            known,
            model_tag,
        )
        row_sets = [(spec.splits[scored_split(spec)], items, "eval")]
        if demos:
            demo_role = "train" if settings.demo_source == "train" else scored_split(spec)
            row_sets.append((spec.splits[demo_role], demos, "demonstrations"))
        log_row_sets(spec, row_sets)
        verbatim = protocol(settings.protocol).templates == "verbatim"
        prompt = few_shot_prefix(spec, demos, fmt, verbatim=verbatim) + render(spec, items[0], fmt) if items else ""
        results = score_cell(model, tokenizer, spec, fmt, demos, items, settings, known=known)
    elapsed = time.perf_counter() - started
    if prompt:
        mlflow.log_text(prompt, "prompt.txt")
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
