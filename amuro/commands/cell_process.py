"""Sweep cells as fresh processes that skip the import cost of torch, transformers and mlflow.

A sweep runs dozens of cells, each an ordinary ``python -m amuro ...`` / ``python -m analysis ...``
command; importing the libraries takes several seconds per process on a small machine, often longer than the
cell's own work. Cells are forked from a multiprocessing fork server that imported the libraries once (and
never touched a tracking store, a model or a thread pool), so each cell is still its own process, with its own
environment and log file, killed with the sweep, and exiting with the command's exit code.

A cell's ``OMP_NUM_THREADS`` sets its torch thread count, also in a forked cell whose torch was imported before
the environment was set (the same results, bit for bit, on any count). The study's models are small: a second
thread makes a cell about 1.3x faster for 1.2x the CPU time, so cells running side by side on one thread each
use the cores best. A cell reports the CPU time it used (its own and its children's), which the parent cannot
measure for a process forked by the fork server.
"""

from __future__ import annotations

import gc
import importlib
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

ENTRY_POINTS = {"amuro": ("amuro.cli", "main"), "analysis": ("analysis.cli", "cli")}
# The entry points, and what the libraries import only once a cell runs: MLflow's sqlite store and the modules
# its first run looks for (a notebook, a git checkout), the Trainer and the datasets library. Without the latter
# a forked eval cell took 1.9 s, with them 0.6 s (benchmarks/cell_startup.py). A module not installed is left
# out; nothing here may start a thread or touch a GPU (deepspeed probes GPUs on import: cells import it).
PRELOAD = [
    "torch",
    "mlflow",
    "amuro.cli",
    "amuro.commands.finetune",
    "amuro.commands.crosseval",
    "amuro.commands.pretrain_eval",
    "analysis.cli",
    "analysis.report",
    "rouge_score.rouge_scorer",
    "IPython",
    "git",
    "datasets",
    "transformers.trainer",
]
# Cells that write to a database themselves, not through a tracking server, use MLflow's SQLAlchemy store: about
# a CPU-second to import, which the fork server spends only for them.
DATABASE_STORE = "mlflow.store.tracking.sqlalchemy_store"


def writes_to_database(tracking_uri: str) -> bool:
    return not tracking_uri.startswith(("http://", "https://"))


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def thread_environment(cpus: float) -> dict[str, str]:
    """The environment that gives a cell ``cpus`` threads (at least one)."""
    threads = str(max(1, math.ceil(cpus)))
    return dict.fromkeys(THREAD_VARIABLES, threads)


def _set_threads(env: dict[str, str]) -> None:
    if env.get("OMP_NUM_THREADS", "").isdigit() and int(env["OMP_NUM_THREADS"]) > 0:
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))


def _entry_point(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """(module, arguments) when ``argv`` is ``python -m amuro|analysis ...``; None for anything else."""
    if len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-m" and argv[2] in ENTRY_POINTS:
        return argv[2], list(argv[3:])
    return None


def _die_with_parent() -> None:
    """A cell ends with the process that runs it: the fork server, which ends with the sweep or Ray worker."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class CellExit(NamedTuple):
    """How a cell process ended: its exit code, the CPU seconds (user and system) it and its children used
    (0 when it was killed before it could say), and whether it was killed for running past its time limit."""

    code: int
    cpu_seconds: float
    timed_out: bool = False


class _Deadline:
    """Kills a process (``kill``: a bound method) once ``seconds`` have passed, unless ended first."""

    def __init__(self, seconds: float | None, kill) -> None:
        self.fired = threading.Event()
        self.timer = threading.Timer(seconds, self._fire, args=(kill,)) if seconds else None
        if self.timer:
            self.timer.daemon = True
            self.timer.start()

    def _fire(self, kill) -> None:
        self.fired.set()
        kill()

    def end(self, code: int) -> bool:
        """Whether the process (exit ``code``) was killed for its time limit."""
        if self.timer:
            self.timer.cancel()
        return self.fired.is_set() and code < 0


def _cpu_seconds() -> float:
    usages = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)


def _run_command(module: str, args: list[str], env: dict[str, str], log_path: str, report) -> None:
    """The body of a forked cell: the environment and log of a fresh process, then the command; its CPU time
    goes back through ``report`` (a pipe's sending end)."""
    _die_with_parent()
    # The libraries the fork server imported live as long as the cell: frozen, they are out of every garbage
    # collection the cell makes (accelerate collects around each training, a quarter second each over them).
    gc.freeze()
    os.environ.clear()
    os.environ.update(env)
    _set_threads(env)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.argv = [module, *args]
    module_name, function = ENTRY_POINTS[module]
    command = getattr(importlib.import_module(module_name), function)
    try:
        command(args=args, prog_name=f"python -m {module}")
    finally:
        _end_like_a_process()
        report.send(_cpu_seconds())


def _end_like_a_process() -> None:
    """A forked child ends with ``os._exit``, which skips exit handlers: end what they would have ended."""
    import logging

    import mlflow

    mlflow.flush_async_logging()
    while mlflow.active_run() is not None:
        mlflow.end_run()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()


_context = None


def _fork_server(database: bool):
    """This process's fork server, preloaded for cells that write to a ``database`` themselves or not (a sweep's
    cells all write to one store)."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD + ([DATABASE_STORE] if database else []))
    return _context


def start_fork_server(database: bool) -> None:
    """Start the fork server in the background for cells that write to a ``database`` themselves or not: it
    imports the libraries (seconds) while the caller goes on, and the first cell forks as soon as that is done."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        threading.Thread(target=_start_and_wait, args=(_fork_server(database),), daemon=True).start()


def _start_and_wait(context) -> None:
    process = context.Process(target=int)  # a process that does nothing: starting it starts the server
    process.start()
    process.join()


def run_cell(argv: Sequence[str], env: dict[str, str], log_path: Path, timeout: float | None = None) -> CellExit:
    """Run one cell command to its end with ``env``, output to ``log_path``, killed (SIGKILL) after ``timeout``
    seconds if given; returns how it ended."""
    entry = _entry_point(argv)
    if entry is None or "forkserver" not in multiprocessing.get_all_start_methods():
        return _run_subprocess(argv, env, log_path, timeout)
    server = _fork_server(writes_to_database(env.get("MLFLOW_TRACKING_URI", "")))
    receive, send = server.Pipe(duplex=False)
    process = server.Process(target=_run_command, args=(*entry, env, str(log_path), send), daemon=False)
    process.start()
    send.close()
    deadline = _Deadline(timeout, process.kill)
    process.join()
    try:
        cpu_seconds = receive.recv() if receive.poll() else 0.0
    except EOFError:  # the cell died (a signal, out of memory) before it could say
        cpu_seconds = 0.0
    receive.close()
    code = process.exitcode if process.exitcode is not None else 1
    return CellExit(code, cpu_seconds, deadline.end(code))


def _run_subprocess(argv: Sequence[str], env: dict[str, str], log_path: Path, timeout: float | None) -> CellExit:
    with (
        open(log_path, "w") as log,
        subprocess.Popen(list(argv), env=env, stdout=log, stderr=subprocess.STDOUT) as process,
    ):
        deadline = _Deadline(timeout, process.kill)
        try:
            _, status, usage = os.wait4(process.pid, 0)  # as Popen.wait, with the child's resource usage
        except BaseException:
            process.kill()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
    return CellExit(process.returncode, usage.ru_utime + usage.ru_stime, deadline.end(process.returncode))


def log_to_its_runs(
    log_path: Path, cell_id: str, parent_run_id: str, experiment: str, tracking_uri: str, since: float
) -> list[str]:
    """Upload a cell's log as ``logs/<name>`` of the top-level runs the cell owned (tagged ``amuro.cell``) and
    ended after ``since`` (a finished run it only reused keeps the log of the attempt that made it)."""
    from mlflow.tracking import MlflowClient

    from amuro.core.runsearch import search_all

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None or not log_path.exists():
        return []
    runs = search_all(
        client,
        [found.experiment_id],
        f"tags.`amuro.cell` = '{cell_id}' and tags.`mlflow.parentRunId` = '{parent_run_id}'",
    )
    runs = [run for run in runs if run.info.end_time is None or run.info.end_time >= since * 1000]
    for run in runs:
        client.log_artifact(run.info.run_id, str(log_path), "logs")
    return [run.info.run_id for run in runs]
