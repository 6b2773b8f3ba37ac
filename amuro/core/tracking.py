"""The tracking contract in code: contract tags, run keys, work done once per key, invocation groups.

Every run the suite writes carries the ``amuro.*`` tags of docs/tracking-contract.md. A cell of work is
identified by its *run key*, a hash of the settings that change its result: a FINISHED run with the same
key is reused and never redone; a RUNNING run whose owner is gone (``ownership``: its heartbeat stale on any
host) is marked FAILED and redone (or, for resumable work such as fine-tuning, reopened and continued); a
live one is waited on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import mlflow
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from amuro.core import ownership
from amuro.core.credentials import redact, split_credentials
from amuro.core.errors import UserError
from amuro.core.run_keys import run_key  # noqa: F401  (used as tracking.run_key)
from amuro.core.runsearch import search_all
from amuro.core.server_health import check_server
from amuro.core.system_metrics import monitoring
from amuro.core.tags import (  # noqa: F401  (the contract's names are used as tracking.Tag, ...)
    CONTRACT_TAGS,
    PREFIX,
    Tag,
    contract_tags,
    quoted,
    tag_filter,
    tag_value,
)
from amuro.core.uploads import configure_http_uploads
from amuro.core.versions import code_tags

DEFAULT_EXPERIMENT = "amuro-char"
# The MLflow UI opens an experiment of this kind in its model-training view (runs, charts), not GenAI's.
EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
# Bookkeeping tags beside the contract: who is running a cell (see ownership), and why a cell failed.
HOST_TAG, PID_TAG, PID_START_TAG = ownership.HOST_TAG, ownership.PID_TAG, ownership.PID_START_TAG
ERROR_TAG = ownership.ERROR_TAG
LAUNCHER_ENV = "MLFLOW_RUN_ID"
# A sweep runs each cell as a child process; its top-level runs nest under the sweep run named here.
PARENT_ENV = "AMURO_PARENT_RUN_ID"


def experiment_name(name: str | None) -> str:
    return name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def runs_table_hint(experiment_id: str) -> str:
    """Where a person sees an experiment's runs: the UI's runs table (MLflow 3 opens an experiment on its GenAI
    overview whatever ``mlflow.experimentKind`` says, so the link names the table itself)."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        return f"runs table: {uri.rstrip('/')}/#/experiments/{experiment_id}/runs"
    return (
        f"runs table: `mlflow ui --backend-store-uri {uri}`, then "
        f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs"
    )


def connect(experiment: str | None) -> str:
    """Check the tracking store answers (fast, naming the URI if not) and return the experiment id. A user and
    password in the URI move to ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` (MLflow's own way to pass them), so
    no URL MLflow prints or amuro logs carries them."""
    uri = mlflow.get_tracking_uri()
    plain, credentials = split_credentials(uri)
    if credentials:
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", credentials[0])
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", credentials[1])
        mlflow.set_tracking_uri(plain)
    if uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        configure_http_uploads()
        check_server(uri)
    elif uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    name = experiment_name(experiment)
    try:
        exp = _created_or_existing(name)
        mlflow.set_experiment(experiment_id=exp.experiment_id)
        if EXPERIMENT_KIND_TAG not in exp.tags:
            MlflowClient().set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    except mlflow.exceptions.MlflowException as exc:
        raise UserError(
            f"tracking store {redact(uri)} refused experiment {name!r}: {str(exc).splitlines()[0]}"
        ) from None
    return exp.experiment_id


def _created_or_existing(name: str):
    """The experiment, created with its kind tag when missing. Several processes may create it at the same
    moment: the losers read the winner's (tagging it afterwards would race on the tag's unique key)."""
    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
        except mlflow.exceptions.MlflowException:
            if client.get_experiment_by_name(name) is None:
                raise
        exp = client.get_experiment_by_name(name)
    return exp


def find_runs(experiment_id: str, key: str) -> list:
    return ownership.runs_with_key(experiment_id, key)


def search_runs(
    experiment_id: str,
    tags: Mapping[str, object] | None = None,
    *,
    status: str | None = None,
    newest_first: bool = False,
    max_results: int | None = None,
) -> list:
    """Runs of one experiment whose tags (full names, e.g. ``{Tag.KIND: "eval"}``) have the given values: every
    one, page after page, or the first ``max_results``."""
    order = ["attributes.start_time DESC"] if newest_first else None
    return search_all(
        MlflowClient(), [experiment_id], tag_filter(tags, status=status), order_by=order, limit=max_results
    )


def _end_if_possible(status: int, error: str | None = None) -> None:
    """End the active run with ``status`` (and ``amuro.error``); when the store cannot take it (it went away,
    the disk is full), the run stays RUNNING until its heartbeat goes stale and is resumed then. The fault that
    ended the work is what the user hears of, not this one."""
    with contextlib.suppress(Exception):
        if error is not None:
            mlflow.set_tag(ERROR_TAG, error)
        mlflow.end_run(RunStatus.to_string(status))


def note_reuse(run: TrackedRun, kind: str, parent_run_id: str | None = None) -> None:
    """Under a sweep or group (``parent_run_id``, else the one this process runs in), record that ``run`` was made
    elsewhere: finished before, or resumed from an earlier invocation's cell. The invocation then finds what it
    used, not only what it made."""
    parent = parent_run_id or os.environ.get(PARENT_ENV)
    if not parent or not (run.reused or run.resumed):
        return
    client = MlflowClient()
    if run.resumed and client.get_run(run.run_id).data.tags.get(Tag.PARENT_RUN_ID) == parent:
        return  # resumed in the invocation that made it
    client.set_tag(parent, f"{Tag.REUSED_PREFIX}{run.run_id}", kind)


def reused_runs(parent, kind: str) -> list[str]:
    """The ids of the finished ``kind`` runs the cells of the sweep or group run ``parent`` reused."""
    return [
        name[len(Tag.REUSED_PREFIX) :]
        for name, value in parent.data.tags.items()
        if name.startswith(Tag.REUSED_PREFIX) and value == kind
    ]


def find_finished(experiment_id: str, key: str, label: str | None = None, say=print) -> TrackedRun | None:
    """The FINISHED run with this key as a reused TrackedRun (saying so when ``label`` names it), else None."""
    for run in find_runs(experiment_id, key):
        if run.info.status == "FINISHED":
            if label is not None:
                say(f"reusing finished run {run.info.run_id} ({label})")
            return TrackedRun(run.info.run_id, reused=True)
    return None


@dataclass
class TrackedRun:
    """The run that holds the work of one key; ``reused`` means it had FINISHED before this process asked."""

    run_id: str
    reused: bool = False
    resumed: bool = False
    joined: bool = False  # ``join=True`` and another live process owns the key: ``run_id`` is its run


class FinishedElsewhere(Exception):
    """Another process finished the key while this one waited for it; ``run`` is that run, to reuse."""

    def __init__(self, key: str, run: TrackedRun) -> None:
        super().__init__(f"run {run.run_id} finished the work of key {key} while this process waited for it")
        self.key, self.run = key, run


def run_once(
    experiment_id: str,
    key: str,
    tags: Mapping[str, str],
    run_name: str,
    work: Callable[[TrackedRun], object],
    *,
    parent_run_id: str | None = None,
    resumable: bool = False,
    system_metrics: bool = False,
    join: bool = False,
    say=print,
) -> TrackedRun:
    """The work of one key, done once: the FINISHED run with the key is reused (``work`` is not called), else
    ``work(run)`` runs inside this key's run (see :func:`tracked_run` for the options; its claim is what finds
    the finished run)."""
    try:
        with tracked_run(
            experiment_id,
            key,
            tags,
            run_name,
            parent_run_id=parent_run_id,
            resumable=resumable,
            system_metrics=system_metrics,
            join=join,
            say=say,
        ) as run:
            work(run)
    except FinishedElsewhere as finished:
        if finished.key != key:
            raise
        say(f"reusing finished run {finished.run.run_id} ({run_name})")
        return finished.run
    return run


@contextmanager
def tracked_run(
    experiment_id: str,
    key: str,
    tags: Mapping[str, str],
    run_name: str,
    *,
    parent_run_id: str | None = None,
    resumable: bool = False,
    system_metrics: bool = False,
    join: bool = False,
    say=print,
) -> Iterator[TrackedRun]:
    """The body runs inside this key's active MLflow run: a new one, or (``resumable``) a failed one reopened.

    A live owner of the key is waited on (``join=True``: joined, the body runs beside it with no active run).
    Ask :func:`find_finished` first, or use :func:`run_once`: when the key is finished by another process
    while this one waits, :class:`FinishedElsewhere` is raised before the body. Exceptions mark the run
    FAILED with the error's first line in ``amuro.error``; KeyboardInterrupt marks it KILLED.
    ``system_metrics``: the run logs MLflow's system metrics (see ``amuro.core.system_metrics``).
    """
    parent = parent_run_id or os.environ.get(PARENT_ENV) or None
    nested = mlflow.active_run() is not None  # a search trial under its finetune run

    def start(claim_tags: dict[str, str]) -> mlflow.ActiveRun:
        return mlflow.start_run(
            experiment_id=experiment_id,
            run_name=run_name,
            parent_run_id=parent,
            nested=nested,
            tags={**tags, Tag.RUN_KEY: key, **code_tags(), **claim_tags},
            log_system_metrics=system_metrics and monitoring(tags.get(Tag.KIND)),
        )

    claimed = ownership.claim(experiment_id, key, start, resumable=resumable, join=join, say=say)
    if claimed.joined:
        yield TrackedRun(claimed.run_id, joined=True)
        return
    if claimed.finished:
        raise FinishedElsewhere(key, TrackedRun(claimed.run_id, reused=True))
    if claimed.resumed:
        say(f"resuming run {claimed.run_id} ({run_name})")
        mlflow.start_run(
            run_id=claimed.run_id, nested=nested, log_system_metrics=system_metrics and monitoring(tags.get(Tag.KIND))
        )
    try:
        with ownership.keep_alive(claimed.run_id):
            yield TrackedRun(claimed.run_id, resumed=claimed.resumed)
    except KeyboardInterrupt:
        _end_if_possible(RunStatus.KILLED)
        raise
    except BaseException as exc:
        _end_if_possible(RunStatus.FAILED, (str(exc).splitlines() or [type(exc).__name__])[0][:4000])
        raise
    else:
        ownership.check_owner(claimed.run_id)
        mlflow.end_run()


@contextmanager
def invocation_group(
    experiment_id: str,
    entry_point: str,
    key: str,
    run_name: str,
    launcher: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """A parent run grouping one invocation's cells, so the UI shows them together.

    Under ``mlflow run`` the launcher run (``MLFLOW_RUN_ID``) is the parent when it is in the same
    experiment; otherwise a ``group`` run is found by key (re-running the same command reuses it) or made.
    """
    client = MlflowClient()
    group_tags = {
        Tag.KIND: "group",
        Tag.ENTRY_POINT: entry_point,
        Tag.RUN_KEY: key,
        **code_tags(),
        **(tags or {}),
        **ownership.identity(),
    }
    if launcher and client.get_run(launcher).info.experiment_id == experiment_id:
        parent = launcher
        for name, value in group_tags.items():
            client.set_tag(parent, name, value)
    else:
        if launcher:
            client.set_tag(launcher, Tag.KIND, "group")
            client.set_tag(launcher, Tag.ENTRY_POINT, entry_point)
        existing = [
            r for r in find_runs(experiment_id, key) if not (r.info.status == "RUNNING" and ownership.owner_alive(r))
        ]
        if existing:
            parent = existing[0].info.run_id
            client.update_run(parent, status="RUNNING")
            for name, value in ownership.identity().items():
                client.set_tag(parent, name, value)
        else:
            outer = os.environ.get(PARENT_ENV)
            nest = {"mlflow.parentRunId": outer} if outer else {}
            parent = client.create_run(experiment_id, run_name=run_name, tags={**group_tags, **nest}).info.run_id
        if launcher:
            client.set_tag(launcher, Tag.GROUP_RUN_ID, parent)
    status = "FINISHED"
    try:
        with ownership.keep_alive(parent):
            yield parent
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        if parent != launcher:
            client.set_terminated(parent, status)


def _note_launcher(launcher: str | None, result_run_id: str, entry_point: str) -> None:
    """Under ``mlflow run``, point the launcher run at the run that holds the result."""
    if launcher and launcher != result_run_id:
        client = MlflowClient()
        client.set_tag(launcher, Tag.KIND, "group")
        client.set_tag(launcher, Tag.ENTRY_POINT, entry_point)
        client.set_tag(launcher, Tag.RESULT_RUN_ID, result_run_id)


def _drop_launcher() -> str | None:
    """Forget ``MLFLOW_RUN_ID`` so the entry point's own runs are not merged into the launcher run."""
    return os.environ.pop(LAUNCHER_ENV, None)


@dataclass
class Invocation:
    """One entry point invocation: its experiment and the ``mlflow run`` launcher run, if any."""

    entry_point: str
    experiment: str | None
    experiment_id: str
    launcher: str | None
    result_run_id: str | None = None

    def reconnect(self) -> str:
        """Connect again (after the tracking URI changed); returns the experiment id."""
        self.experiment_id = connect(self.experiment)
        return self.experiment_id

    def group(self, key: str, run_name: str, tags: Mapping[str, str] | None = None):
        """The parent run of this invocation's cells (see :func:`invocation_group`)."""
        return invocation_group(self.experiment_id, self.entry_point, key, run_name, self.launcher, tags)


@contextmanager
def entry_point(name: str, experiment: str | None, tracking_uri: str | None = None) -> Iterator[Invocation]:
    """An entry point's ritual: take the launcher run of ``mlflow run`` aside, connect to the experiment, and
    on success point the launcher at ``invocation.result_run_id`` when the body set one."""
    launcher = _drop_launcher()
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    invocation = Invocation(name, experiment, connect(experiment), launcher)
    yield invocation
    if invocation.result_run_id:
        _note_launcher(launcher, invocation.result_run_id, name)
