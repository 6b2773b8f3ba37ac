"""``crosseval``: every tuned model on in-domain, out-of-domain and other-task data, in every format.

Each (tuned model, dataset, format) is an eval run tagged with the finetune run's tuning and training set,
the base checkpoint's step / tokens / revision (so the analysis pairs it with pretrain-eval's run of that
checkpoint) and the relation of the dataset to the training set.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlflow.tracking import MlflowClient

from amuro.commands.entry import open_entry
from amuro.core import tracking
from amuro.core.errors import UserError
from amuro.core.settings import CrossevalSettings
from amuro.core.tracking import Tag
from amuro.core.values import dataset_selection
from amuro.data import CATALOGUE, resolve
from amuro.models.targets import EvalTarget, checkpoint_target, tuned_target
from amuro.scoring.cells import Cell, evaluate_target, select_cells
from amuro.scoring.curves import log_cell_curves
from amuro.scoring.lmeval_tasks import LmEvalTask


def _finetune_runs(experiment_id: str, cfg: CrossevalSettings) -> list:
    """The FINISHED finetune runs named by ``cfg.runs`` (ids, a sweep/group parent, or ``all``), filtered."""
    client = MlflowClient()
    if cfg.runs.strip() == "all":
        runs = tracking.search_runs(experiment_id, {Tag.KIND: "finetune"}, status="FINISHED")
    else:
        runs = []
        for run_id in (r.strip() for r in cfg.runs.split(",") if r.strip()):
            runs.extend(_named_run(client, experiment_id, run_id))
    if cfg.model:
        runs = [r for r in runs if r.data.tags.get(Tag.MODEL) == cfg.model]
    if cfg.train_dataset:
        runs = [r for r in runs if r.data.tags.get(Tag.TRAIN_DATASET) in cfg.train_dataset.split(",")]
    if cfg.steps:
        wanted = {s.strip() for s in cfg.steps.split(",")}
        runs = [r for r in runs if r.data.tags.get(Tag.STEP) in wanted]
    if not runs:
        raise UserError(
            f"no finished finetune runs match runs={cfg.runs!r} in experiment "
            f"{tracking.experiment_name(cfg.experiment)!r}: run finetune first or change the filters"
        )
    for run in runs:
        if not client.list_artifacts(run.info.run_id, "model"):
            raise UserError(f"finetune run {run.info.run_id} has no model artifact: re-run finetune for it")
    return sorted(
        runs,
        key=lambda r: (
            r.data.tags.get(Tag.MODEL, ""),
            int(r.data.tags.get(Tag.STEP, 0)),
            r.data.tags.get(Tag.TRAIN_DATASET, ""),
        ),
    )


def _named_run(client: MlflowClient, experiment_id: str, run_id: str) -> list:
    try:
        run = client.get_run(run_id)
    except Exception:
        raise UserError(
            f"run {run_id} does not exist in the tracking store: give a finetune run id, a sweep run id or 'all'"
        ) from None
    kind = run.data.tags.get(Tag.KIND)
    if kind in ("sweep", "group"):  # the fine-tunes its cells made, and those they reused from elsewhere
        made = tracking.search_runs(experiment_id, {Tag.KIND: "finetune", Tag.PARENT_RUN_ID: run_id}, status="FINISHED")
        known = {r.info.run_id for r in made}
        reused = [
            client.get_run(reused_id) for reused_id in tracking.reused_runs(run, "finetune") if reused_id not in known
        ]
        return made + [r for r in reused if r.info.status == "FINISHED"]
    if kind != "finetune":
        raise UserError(f"run {run_id} is a {kind or 'untagged'} run, not a finetune run: give a finetune run id")
    if run.info.status != "FINISHED":
        raise UserError(f"finetune run {run_id} is {run.info.status}, not FINISHED: finish it with finetune first")
    return [run]


def _cells(
    cfg: CrossevalSettings, tuning: str, lmeval: Sequence[LmEvalTask] = (), train_dataset: str | None = None
) -> list[Cell]:
    """Selected datasets x formats; instruction-tuned models also get the multiple-choice suites (in-domain
    for instruction tuning) that can be read here, preference-tuned ones the held-out pairs of their set."""
    from amuro.data.sources import availability, hub_offline

    selection = dataset_selection(cfg.datasets, cfg.lm_eval_tasks, cfg.lm_eval_include)
    specs = resolve(selection, offline_only=selection == "all") if selection else []
    if tuning.startswith("it"):
        readable = (
            ("yes", "local copy", "cached") if hub_offline() else ("yes", "local copy", "cached", "hub (needs network)")
        )
        specs += [s for s in CATALOGUE.values() if s.task == "mc" and s not in specs and availability(s) in readable]
    if tuning.startswith("dpo") and train_dataset in CATALOGUE and CATALOGUE[train_dataset] not in specs:
        specs.append(CATALOGUE[train_dataset])
    return select_cells([*specs, *lmeval], cfg.formats, cfg.eval.protocol)


def _target(run, seed: int, trust_remote_code: bool) -> EvalTarget:
    tags = run.data.tags
    tokens, params = tags.get(Tag.TOKENS), tags.get(Tag.MODEL_PARAMS)
    return tuned_target(
        model=tags[Tag.MODEL],
        revision=tags.get(Tag.REVISION, ""),
        step=int(tags[Tag.STEP]),
        tokens=int(tokens) if tokens else None,
        tuning=tags[Tag.TUNING],
        train_dataset=tags[Tag.TRAIN_DATASET],
        run_id=run.info.run_id,
        seed=seed,
        train_seed=int(tags.get(Tag.SEED) or 0),
        model_params=int(params) if params else None,
        trust_remote_code=trust_remote_code,
    )


def _missing_base(experiment_id: str, target: EvalTarget, cells: Sequence[Cell], shots: int) -> list[Cell]:
    found = tracking.search_runs(
        experiment_id,
        {Tag.KIND: "eval", Tag.TUNING: "none", Tag.MODEL: target.model, Tag.STEP: target.step, Tag.SHOTS: shots},
        status="FINISHED",
    )
    have = {(r.data.tags.get(Tag.EVAL_DATASET), r.data.tags.get(Tag.FORMAT)) for r in found}
    return [(spec, fmt) for spec, fmt in cells if (spec.name, fmt) not in have]


def _base_target(experiment_id: str, target: EvalTarget, run, trust_remote_code: bool) -> EvalTarget:
    """The base checkpoint a finetune run started from: the series as given to finetune, by name, or by run."""
    from amuro.models.series import open_series

    source = run.data.tags.get(Tag.SOURCE_RUN_ID)
    candidates = [run.data.params.get("model"), target.model, f"runs:/{source}/series" if source else None]
    for candidate in dict.fromkeys(c for c in candidates if c):
        try:
            series = open_series(candidate, experiment_id=experiment_id, trust_remote_code=trust_remote_code)
        except UserError:
            continue
        return checkpoint_target(series.get(target.revision or target.step), seed=target.seed)
    raise UserError(
        f"cannot find the base checkpoint of finetune run {run.info.run_id} ({target.model} "
        f"{target.revision}): run pretrain-eval for it by hand"
    )


def crosseval(cfg: CrossevalSettings) -> list[str]:
    """Score the selected finetune runs on every selected cell; returns the eval run ids."""
    with open_entry("crosseval", cfg, datasets=cfg.datasets) as entry:
        experiment_id = entry.experiment_id
        runs = _finetune_runs(experiment_id, cfg)
        settings = cfg.eval
        lmeval = entry.lmeval_tasks
        plan = [
            (
                run,
                _target(run, settings.seed, cfg.trust_remote_code),
                _cells(cfg, run.data.tags.get(Tag.TUNING, "sft"), lmeval, run.data.tags.get(Tag.TRAIN_DATASET)),
            )
            for run in runs
        ]
        missing = {id(target): _missing_base(experiment_id, target, cells, settings.shots) for _, target, cells in plan}
        lacking = [(t.label.split("+")[0], spec.name, fmt) for _, t, _ in plan for spec, fmt in missing[id(t)]]
        if lacking and not cfg.with_base:
            shown = ", ".join(f"{label} {name} [{fmt}]" for label, name, fmt in lacking[:8])
            print(
                f"{len(lacking)} tuned cells have no base pretrain-eval partner ({shown}"
                f"{', ...' if len(lacking) > 8 else ''}): add --with-base to score them too"
            )
        key = cfg.run_key("crosseval", runs=sorted(r.info.run_id for r in runs))
        run_ids: list[str] = []
        with entry.group(key, f"crosseval {len(runs)} tuned models") as parent:
            for run, target, cells in plan:
                if cfg.with_base and missing[id(target)]:
                    base = _base_target(experiment_id, target, run, cfg.trust_remote_code)
                    run_ids += [
                        c.run_id for c in evaluate_target(experiment_id, parent, base, missing[id(target)], settings)
                    ]
                run_ids += [c.run_id for c in evaluate_target(experiment_id, parent, target, cells, settings)]
            log_cell_curves(experiment_id, parent, run_ids)
    return run_ids
