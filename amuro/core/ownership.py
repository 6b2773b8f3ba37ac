"""Who owns a cell: heartbeats any host can judge, and race-free claiming of a run key.

The owner of a RUNNING run renews ``amuro.heartbeat`` (unix seconds) every ``RENEW_SECONDS`` from a daemon
thread. A RUNNING run whose heartbeat is older than ``STALE_SECONDS`` is dead, whatever host it ran on (on
the owner's own host a vanished process is dead at once), and is marked FAILED so its work can be taken over.

Claiming a key is create-then-check. A claimant creates its run with ``amuro.claim=pending``, then lists the
runs with the key: a FINISHED run, or another live run that has ``won``, means it lost; among live pending
claims the first in (start time, run id) order wins. A pending claim *behind* this one may have been created
after the other listed, so the claimant waits until that one has decided before it marks itself ``won``.
Hence two claims can never both win, whatever the clocks of their hosts say: if X did not see Y, Y was
created after X listed, and Y sees X, pending or won, and either yields to it or waits for it to decide. A
lost claim is marked ``lost``, ended and deleted, and its process waits for the winner instead.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import mlflow
import psutil
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from amuro.core.runsearch import search_all
from amuro_contract import Tag

HEARTBEAT_TAG = Tag.HEARTBEAT
CLAIM_TAG = Tag.CLAIM  # pending, won or lost
HOST_TAG, PID_TAG, PID_START_TAG = Tag.HOST, Tag.PID, Tag.PID_START
ERROR_TAG = Tag.ERROR
KEY_TAG = Tag.RUN_KEY
CELL_TAG, CELL_ENV = Tag.CELL, "AMURO_CELL"  # the sweep cell a run was made by (its log is attached)
RENEW_SECONDS = 20.0
STALE_SECONDS = 120.0
# An owner whose renewals have failed this long stops before another process may judge it dead.
FENCE_SECONDS = STALE_SECONDS - RENEW_SECONDS
FENCED_EXIT = 75  # EX_TEMPFAIL: the work goes on in the process that took the run over
WAIT_SECONDS = 3.0  # how often a waiting process looks at the run it waits on
DECIDE_SECONDS = 0.2  # how often a claimant looks at a pending claim behind it


def identity() -> dict[str, str]:
    """This process, as the owner tags of a run it claims (with a fresh heartbeat)."""
    me = psutil.Process()
    cell = {CELL_TAG: os.environ[CELL_ENV]} if os.environ.get(CELL_ENV) else {}
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(me.pid),
        PID_START_TAG: f"{me.create_time():.2f}",
        HEARTBEAT_TAG: str(int(time.time())),
        **cell,
    }


def heartbeat_age(run: Run, now: float | None = None) -> float:
    """Seconds since the owner's last sign of life (runs from before heartbeats count from their start)."""
    now = time.time() if now is None else now
    try:
        last = float(run.data.tags[HEARTBEAT_TAG])
    except (KeyError, ValueError):
        last = run.info.start_time / 1000
    return max(0.0, now - last)


def _process_gone(tags: Mapping[str, str]) -> bool:
    """On the owner's own host: whether the process that claimed the run no longer exists."""
    try:
        proc = psutil.Process(int(tags.get(PID_TAG, "-1")))
        return abs(proc.create_time() - float(tags.get(PID_START_TAG, "0"))) >= 1.0
    except (psutil.Error, ValueError):
        return True


def owner_alive(run: Run, now: float | None = None) -> bool:
    """Whether the owner of a RUNNING run is alive: a fresh heartbeat, and, on this host, its process."""
    tags = run.data.tags
    if tags.get(HOST_TAG) == socket.gethostname() and PID_TAG in tags and _process_gone(tags):
        return False
    return heartbeat_age(run, now) <= STALE_SECONDS


def describe_owner(run: Run) -> str:
    tags = run.data.tags
    return f"pid {tags.get(PID_TAG, '?')} on {tags.get(HOST_TAG, '?')}, last heartbeat {heartbeat_age(run):.0f} s ago"


def _is_mine(run: Run) -> bool:
    """Whether this process still owns ``run``: RUNNING, with this process's owner tags."""
    mine = identity()
    tags = run.data.tags
    return run.info.status == "RUNNING" and all(
        tags.get(name) == mine[name] for name in (HOST_TAG, PID_TAG, PID_START_TAG)
    )


def fence(run_id: str, why: str) -> None:
    """Stop this process at once, logging nothing more: another owner has (or may have) taken ``run_id`` over,
    and anything written now, the run's end included, would mix with its work."""
    print(
        f"Error: stopped without logging results: {why}; run {run_id} belongs to the process that took it over",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    os._exit(FENCED_EXIT)


def check_owner(run_id: str) -> None:
    """Before results are logged: fence this process if another owner has taken ``run_id`` over."""
    try:
        run = MlflowClient().get_run(run_id)
    except Exception:  # the store is away: logging would fail the same way, and say so
        return
    if not _is_mine(run):
        fence(run_id, f"another owner took the run over ({describe_owner(run)}, status {run.info.status})")


class Heartbeat:
    """A daemon thread renewing ``amuro.heartbeat`` of one run until stopped. Each beat also checks the run is
    still this process's; the owner is fenced (stopped without logging) when another took it over, or when
    its renewals have failed for ``FENCE_SECONDS`` (others may judge it dead from then on)."""

    def __init__(self, run_id: str, every: float | None = None) -> None:
        self.run_id, self.every = run_id, every or RENEW_SECONDS
        self._client = MlflowClient(tracking_uri=mlflow.get_tracking_uri())
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"amuro-heartbeat-{run_id[:8]}", daemon=True)
        self._renewed = time.monotonic()

    def _beat(self) -> None:
        while not self._stopped.wait(self.every):
            try:
                run = self._client.get_run(self.run_id)
                if self._stopped.is_set():
                    return
                if not _is_mine(run):
                    fence(self.run_id, f"another owner took the run over ({describe_owner(run)})")
                self._client.set_tag(self.run_id, HEARTBEAT_TAG, str(int(time.time())))
                self._renewed = time.monotonic()
            except Exception:  # a blip of the server: the next beat tries again
                if time.monotonic() - self._renewed > FENCE_SECONDS and not self._stopped.is_set():
                    fence(
                        self.run_id,
                        f"the tracking server took no heartbeat for {FENCE_SECONDS:.0f} s, so "
                        "another process may take the run over",
                    )

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()


@contextmanager
def keep_alive(run_id: str) -> Iterator[None]:
    beat = Heartbeat(run_id).start()
    try:
        yield
    finally:
        beat.stop()


def runs_with_key(experiment_id: str, key: str) -> list[Run]:
    return search_all(
        MlflowClient(), [experiment_id], f"tags.`{KEY_TAG}` = '{key}'", order_by=["attributes.start_time DESC"]
    )


def mark_dead(run: Run, reason: str | None = None, client: MlflowClient | None = None) -> None:
    """A RUNNING run whose owner is gone: FAILED (a pending claim: lost), so its work can be taken over."""
    client = client or MlflowClient()
    if run.data.tags.get(CLAIM_TAG) == "pending":
        _drop(run.info.run_id)
        return
    reason = reason or f"process died before the run finished ({describe_owner(run)})"
    client.set_tag(run.info.run_id, ERROR_TAG, reason)
    client.set_terminated(run.info.run_id, "FAILED")


def end_dead_cell_runs(client: MlflowClient, experiment_id: str, cell_id: str, reason: str) -> list[str]:
    """The RUNNING runs a sweep cell made whose owner is gone (the cell's process died): FAILED with ``reason``,
    ready to be resumed; a live owner's runs (another process on the same cell) are left alone."""
    runs = search_all(client, [experiment_id], f"tags.`{CELL_TAG}` = '{cell_id}' and attributes.status = 'RUNNING'")
    dead = [run for run in runs if not owner_alive(run)]
    for run in dead:
        mark_dead(run, reason, client)
    return [run.info.run_id for run in dead]


def _drop(run_id: str) -> None:
    """A lost claim: marked lost, ended (this process's active run too) and deleted, so the UI never shows it."""
    client = MlflowClient()
    client.set_tag(run_id, CLAIM_TAG, "lost")
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        mlflow.end_run("KILLED")
    else:
        client.set_terminated(run_id, "KILLED")
    client.delete_run(run_id)


@dataclass
class KeyState:
    """The runs of one key, dead owners already marked: what is finished, who is on it, what to resume."""

    finished: Run | None
    live: list[Run]
    resumable: Run | None


def key_state(experiment_id: str, key: str, exclude: str | None = None) -> KeyState:
    finished, live, resumable = None, [], None
    for run in runs_with_key(experiment_id, key):
        status, claim = run.info.status, run.data.tags.get(CLAIM_TAG)
        if run.info.run_id == exclude:
            continue
        if status == "FINISHED":
            finished = finished or run
        elif status == "RUNNING" and claim != "lost":
            if owner_alive(run):
                live.append(run)
                continue
            mark_dead(run)
            status = "FAILED"
        if status in ("FAILED", "KILLED") and claim not in ("pending", "lost") and resumable is None:
            resumable = run
    return KeyState(finished, live, resumable)


def _order(run: Run) -> tuple[int, str]:
    return run.info.start_time, run.info.run_id


def decide(experiment_id: str, key: str, mine: Run) -> KeyState | None:
    """The key's other runs when the pending claim ``mine`` wins the key (marked ``won``); None when it loses
    it (the caller drops it)."""
    while True:
        state = key_state(experiment_id, key, exclude=mine.info.run_id)
        if state.finished is not None:
            return None
        waiting = False
        for run in state.live:
            if run.data.tags.get(CLAIM_TAG) != "pending" or _order(run) < _order(mine):
                return None  # a winner, a run from before claims, or a pending claim ahead of mine
            waiting = True  # a pending claim behind mine: it may not have seen mine yet
        if not waiting:
            MlflowClient().set_tag(mine.info.run_id, CLAIM_TAG, "won")
            return state  # once won, no other process changes the key's runs: its resumable run stays so
        time.sleep(DECIDE_SECONDS)


@dataclass
class Claim:
    """The outcome of claiming a key: a finished run to reuse, or the run this process now owns."""

    run_id: str
    finished: bool
    resumed: bool = False
    joined: bool = False  # another live process owns it, and the caller asked to join rather than wait


def claim(
    experiment_id: str,
    key: str,
    start: Callable[[dict[str, str]], Run],
    *,
    resumable: bool,
    join: bool = False,
    say=print,
) -> Claim:
    """Claim ``key``: reuse a finished run, wait out (or join) a live owner, else own a new or reopened run.

    ``start(tags)`` creates this process's claim run (the active MLflow run) and returns it.
    """
    waited_on = None
    while True:
        state = key_state(experiment_id, key)
        if state.finished is not None:
            return Claim(state.finished.info.run_id, finished=True)
        if state.live:
            owners = [run for run in state.live if run.data.tags.get(CLAIM_TAG) != "pending"]
            if join and owners:
                return Claim(owners[0].info.run_id, finished=False, joined=True)
            if join:
                time.sleep(DECIDE_SECONDS)  # claims still deciding: join the winner once there is one
                continue
            owner = state.live[0]
            if owner.info.run_id != waited_on:
                waited_on = owner.info.run_id
                say(f"waiting for run {waited_on} with the same settings ({describe_owner(owner)})")
            time.sleep(WAIT_SECONDS)
            continue
        mine = start({CLAIM_TAG: "pending", ERROR_TAG: "", **identity()})
        won = decide(experiment_id, key, mine)
        if won is not None:
            resume = won.resumable if resumable else None
            if resume is None:
                return Claim(mine.info.run_id, finished=False)
            reopen(resume.info.run_id)
            _drop(mine.info.run_id)
            return Claim(resume.info.run_id, finished=False, resumed=True)
        _drop(mine.info.run_id)


def reopen(run_id: str) -> None:
    """Take over a failed or killed run: RUNNING again, owned by this process, its error cleared."""
    client = MlflowClient()
    client.update_run(run_id, status="RUNNING")
    for name, value in {CLAIM_TAG: "won", ERROR_TAG: "", **identity()}.items():
        client.set_tag(run_id, name, value)
