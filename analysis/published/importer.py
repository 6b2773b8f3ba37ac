"""``import-published``: the study's released results as eval runs in an experiment of their own.

Each row is a run tagged ``amuro.origin=published`` with a run key of its own, so importing
again adds nothing, and an import that was cut short picks up where it stopped (a run left
RUNNING is completed, not duplicated).
"""

from __future__ import annotations

import contextlib
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from amuro_contract import Tag
from analysis.published.ids import PublishedTableError
from analysis.published.tables import SHIPPED_TABLES, PublishedRun, published_runs
from analysis.store import TrackingError, check_tracking_uri, client, resolve_tracking_uri

DEFAULT_EXPERIMENT = "amuro-char-published"
_PAGE_SIZE = 5000
_SERVER_WORKERS = 4

__all__ = ["DEFAULT_EXPERIMENT", "ImportSettings", "Imported", "PublishedTableError", "import_published"]


@dataclass(frozen=True)
class ImportSettings:
    """What to import, and where."""

    experiment: str = DEFAULT_EXPERIMENT
    tracking_uri: str | None = None
    tables: tuple[str, ...] = tuple(str(path) for path in SHIPPED_TABLES)


@dataclass(frozen=True)
class Imported:
    experiment: str
    tracking_uri: str
    added: int
    present: int


def import_published(settings: ImportSettings) -> Imported:
    """Log every row of the tables as an eval run in ``settings.experiment`` (created when
    missing). Raises PublishedTableError for a row that is not the study's, and TrackingError
    when the experiment holds eval runs of one's own; in both cases nothing is logged."""
    runs = published_runs(settings.tables)
    uri = resolve_tracking_uri(settings.tracking_uri)
    if uri.startswith(("http://", "https://")):
        check_tracking_uri(uri)
    store = client(uri)
    experiment = store.get_experiment_by_name(settings.experiment)
    experiment_id = experiment.experiment_id if experiment else store.create_experiment(settings.experiment)
    _refuse_own_runs(store, experiment_id, settings.experiment)
    existing = _published_runs_by_key(store, experiment_id)
    todo = [run for run in runs if existing.get(run.run_key, ("", ""))[1] != "FINISHED"]
    workers = _SERVER_WORKERS if uri.startswith(("http://", "https://")) else 1

    def log(run: PublishedRun) -> None:
        _log(store, experiment_id, run, existing.get(run.run_key, ("", ""))[0])

    # MLflow announces finished runs on stdout; keep stdout for the command's own output.
    with contextlib.redirect_stdout(sys.stderr):
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(log, todo))
        else:
            for run in todo:
                log(run)
    return Imported(settings.experiment, uri, len(todo), len(runs) - len(todo))


def _refuse_own_runs(store, experiment_id: str, name: str) -> None:
    """Published scores are kept apart from runs of one's own (an eval run without an
    ``amuro.origin`` tag is one's own: absent means ``run``)."""
    token = None
    while True:
        page = store.search_runs(
            [experiment_id], f"tags.`{Tag.KIND}` = 'eval'", max_results=_PAGE_SIZE, page_token=token
        )
        if any(run.data.tags.get(Tag.ORIGIN) != "published" for run in page):
            raise TrackingError(
                f"experiment {name!r} holds eval runs of your own; import the published results "
                f"into an experiment of their own (--experiment, default {DEFAULT_EXPERIMENT})"
            )
        token = page.token
        if not token:
            return


def _published_runs_by_key(store, experiment_id: str) -> dict[str, tuple[str, str]]:
    """run key -> (run id, status) of the published runs already there (finished ones first)."""
    found: dict[str, tuple[str, str]] = {}
    token = None
    while True:
        page = store.search_runs(
            [experiment_id], f"tags.`{Tag.ORIGIN}` = 'published'", max_results=_PAGE_SIZE, page_token=token
        )
        for run in page:
            key = run.data.tags.get(Tag.RUN_KEY, "")
            if found.get(key, ("", ""))[1] != "FINISHED":
                found[key] = (run.info.run_id, run.info.status)
        token = page.token
        if not token:
            return found


def _log(store, experiment_id: str, run: PublishedRun, resume_id: str) -> None:
    from mlflow.entities import Metric, Param, RunStatus

    run_id = (
        resume_id
        or store.create_run(experiment_id, start_time=run.start_time, tags=run.tags, run_name=run.run_name).info.run_id
    )
    store.log_batch(
        run_id,
        metrics=[Metric(key, value, run.start_time, 0) for key, value in run.metrics.items()],
        params=[Param(key, value) for key, value in run.params.items()],
    )
    store.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED), end_time=run.start_time)
