"""``sweep``: the whole study grid in one command, resumable and parallel, on a tracking server.

The grid is a plan of cells, each an ordinary entry point invocation (``pretrain-eval`` per checkpoint,
``finetune`` per checkpoint x training set, ``crosseval`` per tuned model, then the analysis report) run
as a child process nested under one ``sweep`` run. Every cell is idempotent through its run keys, so a
sweep run again does only what is missing, and a killed sweep resumes where it stopped.
"""

from __future__ import annotations

import os
import socket
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from tqdm import tqdm

from amuro import data
from amuro.commands.cell_process import start_fork_server, writes_to_database
from amuro.commands.entry import open_entry
from amuro.commands.sweep_engine import (
    SWEEP_RUN_PLACEHOLDER,
    LocalEngine,
    PlannedCell,
    Scheduler,
    check_local_gpus,
    default_workers,
)
from amuro.commands.sweep_grid import SeriesGrid, key_revisions, open_grids, short_name
from amuro.core import tracking
from amuro.core.credentials import redact
from amuro.core.errors import UserError
from amuro.core.local_server import LocalServer, free_port
from amuro.core.paths import amuro_home
from amuro.core.settings import (
    CrossevalSettings,
    FinetuneSettings,
    PretrainEvalSettings,
    SweepSettings,
)
from amuro.core.system_metrics import node_environment
from amuro.core.tracking import Tag
from amuro.data.preferences import PREFERENCE_TASK, preference_mismatch
from amuro.scoring.curves import log_curves

PARENT_ENV = tracking.PARENT_ENV
FINDINGS_FILE = "findings.txt"


def plan(
    cfg: SweepSettings, series_name: str, revisions: list[tuple[str, int]], report_path: Path
) -> list[PlannedCell]:
    """The cells of the study grid of ``cfg.model``'s series (see ``plan_grids``)."""
    return plan_grids(cfg, [SeriesGrid(cfg.model, series_name, revisions)], report_path)


def plan_grids(cfg: SweepSettings, grids: list[SeriesGrid], report_path: Path) -> list[PlannedCell]:
    """The cells of the study grid of each series, then the report over them all, in an order that runs each cell
    after what it needs: each finetune cell trains with the sweep's own training settings, each eval cell scores
    with its eval settings."""
    cells = [cell for grid in grids for cell in _series_cells(cfg, grid.model, grid.series_name, grid.revisions)]
    return cells + [_report_cell(cfg, cells, report_path)]


# The sweep's settings its scoring cells take as they are (each cell's own are given beside them).
SCORING_PASSED_ON = ("formats", "eval", "dataset_spec", "dataset_revision", "lm_eval_tasks", "lm_eval_include")


def _cell_settings(cfg: SweepSettings, cell_class: type, passed_on: tuple[str, ...], **own):
    """A cell's settings: the sweep's experiment and its values of ``passed_on``, then the cell's ``own``."""
    values = {name: getattr(cfg, name) for name in passed_on}
    return cell_class(experiment=tracking.experiment_name(cfg.experiment), **values, **own)


def _series_cells(cfg: SweepSettings, model: str, series_name: str, revisions) -> list[PlannedCell]:
    steps = [step for _, step in revisions]
    # checkpoints sharing a step (OLMo-2's stage-2 ingredients and main) are cells apart, named by revision
    where = {r: f"{short_name(series_name)}@" + (f"step{s}" if steps.count(s) == 1 else r) for r, s in revisions}
    cells = [
        PlannedCell(
            f"pretrain-eval {where[revision]}",
            _cell_settings(
                cfg,
                PretrainEvalSettings,
                ("trust_remote_code", *SCORING_PASSED_ON),
                model=model,
                checkpoints=revision,
                datasets=cfg.eval_datasets,
            ),
        )
        for revision in where
    ]
    seeds = cfg.seed_list
    finetune_gpus = max(1, int(cfg.cell_resources("gpus_per_cell", 0)["finetune"]))  # data-parallel processes
    for revision, step in revisions:
        for dataset in cfg.train_dataset_list:
            tuned = []
            for seed in seeds:
                tuned.append(f"finetune {where[revision]} {dataset}" + (f" seed{seed}" if len(seeds) > 1 else ""))
                train = replace(
                    cfg.train, seed=seed, checkpoint_artifacts=cfg.train.checkpoint_artifacts or cfg.engine == "ray"
                )
                cells.append(
                    PlannedCell(
                        tuned[-1],
                        _cell_settings(
                            cfg,
                            FinetuneSettings,
                            ("trust_remote_code", "dataset_spec", "dataset_revision"),
                            model=model,
                            checkpoint=revision,
                            dataset=dataset,
                            train=train,
                            gpus=finetune_gpus,
                            protocol=cfg.eval.protocol,
                            evaluate=False,
                        ),
                    )
                )
            cells.append(
                PlannedCell(
                    f"crosseval {where[revision]}+{dataset}",
                    _cell_settings(
                        cfg,
                        CrossevalSettings,
                        ("trust_remote_code", *SCORING_PASSED_ON),
                        runs=SWEEP_RUN_PLACEHOLDER,
                        model=series_name,
                        train_dataset=dataset,
                        steps=str(step),
                        datasets=cfg.eval_datasets,
                        with_base=cfg.train.tuning == "dpo",  # the base's cell of the held-out pairs
                    ),
                    after=tuned,
                )
            )
    return cells


def _report_cell(cfg: SweepSettings, cells: list[PlannedCell], report_path: Path) -> PlannedCell:
    return PlannedCell(
        "analysis report",
        argv=[
            sys.executable,
            "-m",
            "analysis",
            "report",
            "--experiment",
            tracking.experiment_name(cfg.experiment),
            "--out",
            str(report_path),
            "--findings-out",
            str(report_path.with_name(FINDINGS_FILE)),
        ],
        after=[c.name for c in cells],
        needs_success=False,
    )


def _serves_its_store(cfg: SweepSettings, uri: str) -> bool:
    """Whether the sweep serves the sqlite store ``uri`` to its cells (cells at once would write the file)."""
    return uri.startswith("sqlite:") and (cfg.workers > 1 or cfg.engine != "local")


def cells_write_to_database(cfg: SweepSettings) -> bool:
    """Whether the cells open the store's database themselves (what their fork server preloads follows it)."""
    uri = cfg.tracking_uri or mlflow.get_tracking_uri()
    return writes_to_database(uri) and not _serves_its_store(cfg, uri)


@contextmanager
def tracking_server(cfg: SweepSettings):
    """The URI the cells write to: the given one, or a local ``mlflow server`` over a local sqlite store.

    The process's tracking URI is set to it inside the block and set back on the way out, so what is written
    after the block (the note to an ``mlflow run`` launcher) goes to the store, not to a stopped server.
    """
    uri = cfg.tracking_uri or mlflow.get_tracking_uri()
    if not _serves_its_store(cfg, uri):
        yield uri
        return
    previous = mlflow.get_tracking_uri()
    db_path = Path(uri[len("sqlite:///") :]).resolve()
    port = free_port()
    log = amuro_home() / f"mlflow-server-{port}.log" if amuro_home().exists() else None
    # Under a guard that stops it if the sweep is killed outright; its own process group, so a Ctrl-C of the
    # sweep reaches the sweep alone, which stops the server on its way out.
    server = LocalServer(db_path, db_path.parent / "mlartifacts", log=log, guarded=True, port=port)
    try:
        server_uri = server.start()
        print(f"started a local tracking server at {server_uri} (pid {server.process.pid}) over {db_path}")
        yield server_uri
    finally:
        mlflow.set_tracking_uri(previous)
        server.stop()


def _record_failure(client: MlflowClient, experiment_id: str, sweep_run_id: str, name: str, error: str) -> None:
    run = client.create_run(
        experiment_id,
        run_name=f"FAILED {name}",
        tags={
            Tag.KIND: "group",
            Tag.ENTRY_POINT: name.split(" ")[0],
            Tag.ERROR: error[:4000],
            Tag.PARENT_RUN_ID: sweep_run_id,
        },
    )
    client.set_terminated(run.info.run_id, "FAILED")


def _study_evals(experiment_id: str, grid: SeriesGrid, cfg: SweepSettings) -> list:
    """The finished eval runs of the grid: this series at its steps, base or tuned on its training sets."""
    found = tracking.search_runs(
        experiment_id, {Tag.KIND: "eval", Tag.MODEL: grid.series_name, Tag.SHOTS: cfg.eval.shots}, status="FINISHED"
    )
    steps = {str(step) for _, step in grid.revisions}
    trained = {"none", *cfg.train_dataset_list}
    return [r for r in found if r.data.tags.get(Tag.STEP) in steps and r.data.tags.get(Tag.TRAIN_DATASET) in trained]


def _check_engine(cfg: SweepSettings, uri: str) -> None:
    """What the engine needs, checked before anything is logged: GPUs for local cells; Ray installed, the cluster
    and store reachable."""
    if cfg.engine != "ray":
        check_local_gpus(cfg)
        return
    try:
        from amuro.commands.sweep_ray import check_reachable  # Ray is imported by this engine only
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'amuro[ray]'") from None
    if cfg.address:
        check_reachable(cfg.address)
        if not uri.startswith(("http://", "https://")):
            raise UserError(
                f"a sweep on a Ray cluster needs a tracking server every node reaches, not {redact(uri)}: "
                "give --tracking-uri http(s)://host:port (mlflow server), or leave out --address"
            )


@contextmanager
def engine_session(cfg: SweepSettings, uri: str):
    """The engine's class, with the Ray cluster joined (its resources checked) for the ray engine."""
    if cfg.engine == "local":
        yield LocalEngine
        return
    from amuro.commands.sweep_ray import RayEngine, ray_session

    with ray_session(cfg, uri):
        yield RayEngine


def _run_cells(
    cfg: SweepSettings,
    engine: type[Scheduler],
    cells: list[PlannedCell],
    uri: str,
    work: Path,
    sweep_run: tracking.TrackedRun,
    experiment_id: str,
) -> Scheduler:
    """Run the cells under the sweep run; the owner of the sweep run records progress and failures there."""
    env = {
        **os.environ,
        **node_environment(socket.gethostname()),
        "MLFLOW_TRACKING_URI": uri,
        PARENT_ENV: sweep_run.run_id,
        "MLFLOW_EXPERIMENT_NAME": tracking.experiment_name(cfg.experiment),
    }
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        env.pop(name, None)
    runner = engine(cells, env, work, sweep_run.run_id, cfg)
    client = MlflowClient()
    bar = tqdm(total=len(cells), desc="sweep cells", unit="cell")

    def progress(done_cell: PlannedCell) -> None:
        counts = {s: list(runner.status.values()).count(s) for s in ("done", "failed", "blocked")}
        bar.update(1)
        bar.set_postfix(counts)
        if sweep_run.joined:
            return
        step = sum(counts.values())
        client.log_metric(sweep_run.run_id, "cells_done", counts["done"], step=step)
        client.log_metric(sweep_run.run_id, "cells_failed", counts["failed"] + counts["blocked"], step=step)
        client.log_metric(sweep_run.run_id, "cells_total", len(cells), step=step)
        if runner.status[done_cell.name] != "done":
            _record_failure(client, experiment_id, sweep_run.run_id, done_cell.name, runner.errors[done_cell.name])

    try:
        runner.run(progress)
    finally:
        bar.close()  # what follows (an error, the findings) starts on a line of its own
    if not sweep_run.joined:
        mlflow.log_dict(
            {
                "engine": cfg.engine,
                "status": runner.status,
                "errors": runner.errors,
                "seconds": runner.seconds,
                "placement": runner.placement,
            },
            "status.json",
        )
    return runner


def _conduct(
    cfg: SweepSettings,
    sweep_run: tracking.TrackedRun,
    cells: list[PlannedCell],
    grids: list[SeriesGrid],
    engine: type[Scheduler],
    uri: str,
    work: Path,
    experiment_id: str,
) -> None:
    """The sweep run's work: run the plan's cells as the run's owner, or, joining the process that owns it, the
    cells nobody has claimed yet. Failed cells end it with an error."""
    if sweep_run.joined:
        print(
            f"joining sweep run {sweep_run.run_id}, which another process owns: this one takes the cells "
            "nobody has claimed yet, from the end of the plan"
        )
        cells = [c for c in reversed(cells) if c.settings is not None]  # the owner writes the report
        work = work / f"helper-{socket.gethostname()}-{os.getpid()}"
        work.mkdir(parents=True, exist_ok=True)
    else:
        (work / FINDINGS_FILE).unlink(missing_ok=True)  # the report cell writes this attempt's
        if not sweep_run.resumed:
            mlflow.log_params({k: tracking.tag_value(v) for k, v in cfg.params().items() if v is not None})
        mlflow.log_dict({"cells": [c.describe() for c in cells], "revisions": key_revisions(grids)}, "plan.json")
    runner = _run_cells(cfg, engine, cells, uri, work, sweep_run, experiment_id)
    if not sweep_run.joined:
        for grid in grids:  # several series' curves apart, each under its name
            prefix = f"{grid.short}/" if len(grids) > 1 else ""
            log_curves(sweep_run.run_id, _study_evals(experiment_id, grid, cfg), prefix=prefix)
    if (work / "amuro-report.html").exists() and not sweep_run.joined:
        mlflow.log_artifact(str(work / "amuro-report.html"))
    if (work / FINDINGS_FILE).exists() and not sweep_run.joined:
        mlflow.log_artifact(str(work / FINDINGS_FILE))
        print(
            "What these runs say of the study's four findings (the report and `python -m analysis findings "
            f"--experiment {tracking.experiment_name(cfg.experiment)}` show the tables behind them):\n"
            + (work / FINDINGS_FILE).read_text()
        )
    failed = {name: runner.errors[name] for name, s in runner.status.items() if s != "done"}
    if failed:
        listing = "; ".join(f"{name}: {error}" for name, error in list(failed.items())[:5])
        raise UserError(
            f"{len(failed)} of {len(cells)} sweep cells failed ({listing}): fix them and run "
            "the same sweep again to redo only those"
        )
    print(f"sweep finished: {len(cells)} cells in run {sweep_run.run_id}")


def sweep(cfg: SweepSettings) -> str:
    """Run (or resume, or join) the study grid; returns the sweep run id. Failed cells end it with an error."""
    models = cfg.model_list  # a model file is read before anything else
    with open_entry("sweep", cfg, datasets=cfg.eval_datasets, tracking_uri=cfg.tracking_uri) as entry:
        invocation = entry.invocation
        _check_engine(cfg, mlflow.get_tracking_uri())
        entry.check_eval_sets()
        for dataset in cfg.train_dataset_list:
            spec = data.get(dataset)
            if (cfg.train.tuning == "dpo") != (spec.task == PREFERENCE_TASK):  # before any cell runs
                raise UserError(preference_mismatch(spec, cfg.train.tuning))
        grids = open_grids(cfg, models, invocation.experiment_id)
        if cfg.workers is None:
            cfg.workers, why = default_workers(cfg, [location for grid in grids for location in grid.locations])
            print(f"sweep: {cfg.workers} cell{'s' if cfg.workers > 1 else ''} at once ({why}; --workers N to change)")
        seeds = {"seeds": cfg.seed_list} if cfg.seeds else {}  # a single-seed sweep keeps its key
        key = cfg.run_key("sweep", revisions=key_revisions(grids), **seeds)
        sweep_run = tracking.find_finished(invocation.experiment_id, key)
        if sweep_run is None:
            work = amuro_home() / "sweeps" / key
            work.mkdir(parents=True, exist_ok=True)
            cells = plan_grids(cfg, grids, work / "amuro-report.html")
            names = ",".join(grid.series_name for grid in grids)
            tags = tracking.contract_tags(kind="sweep", model=names, seed=cfg.train.seed)
            if cfg.engine == "local":
                start_fork_server(database=cells_write_to_database(cfg))
            with tracking_server(cfg) as uri, engine_session(cfg, uri) as engine:
                mlflow.set_tracking_uri(uri)
                experiment_id = invocation.reconnect()

                def conduct(run: tracking.TrackedRun) -> None:
                    _conduct(cfg, run, cells, grids, engine, uri, work, experiment_id)

                run_name = f"sweep {', '.join(grid.short for grid in grids)}"
                sweep_run = tracking.run_once(experiment_id, key, tags, run_name, conduct, resumable=True, join=True)
        if sweep_run.reused:
            print(f"the sweep already finished in run {sweep_run.run_id}: nothing to do")
        invocation.result_run_id = sweep_run.run_id
        print(tracking.runs_table_hint(invocation.experiment_id))
    return sweep_run.run_id
