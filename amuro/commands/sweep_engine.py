"""How sweep cells are run: planned cells, the dependency-order loop every engine shares, the local engine.

An engine runs one cell at a time per worker thread (``run_one``); the loop starts cells whose dependencies
ended, at most ``workers`` at once and only when the engine has room (a free GPU slot), and skips cells whose
dependency failed. The local engine runs each cell as a process on this machine (forked from a fork server,
``cell_process``); with GPUs, each running cell gets its own ``CUDA_VISIBLE_DEVICES``, and each cell's torch
runs on its kind's ``--cpus-per-cell`` threads (as Ray sets ``OMP_NUM_THREADS`` for its tasks; by default the
machine's cores shared among the workers, at most the sweep's own ``OMP_NUM_THREADS`` when set).
"""

from __future__ import annotations

import math
import os
import signal
import socket
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.exceptions import MlflowException

from amuro.commands.cell_process import log_to_its_runs, run_cell, thread_environment
from amuro.core.errors import UserError
from amuro.core.fields import Settings
from amuro.core.gpus import visible_gpus
from amuro.core.ownership import CELL_ENV, end_dead_cell_runs
from amuro.core.settings import SweepSettings
from amuro.core.tracking import PARENT_ENV

SWEEP_RUN_PLACEHOLDER = "{sweep_run_id}"
WEIGHT_SUFFIXES = (".safetensors", ".bin")
CELL_PROCESS_BYTES = 1 << 30  # a cell's interpreter with torch, transformers and mlflow imported
TRAINING_COPIES = 5  # weights, gradients, two optimizer moments and activations, in weights' sizes


@dataclass
class PlannedCell:
    """One cell of the grid: an entry point with its settings object, or a plain command (the report)."""

    name: str
    settings: Settings | None = None
    argv: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    needs_success: bool = True  # False: runs once the cells it comes after have ended, however they ended

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "entry_point": self.settings.entry_point if self.settings else None,
            "settings": self.settings.to_dict() if self.settings else None,
            "argv": self.argv,
            "after": self.after,
        }

    @property
    def kind(self) -> str | None:
        """``finetune`` or ``eval`` (pretrain-eval, crosseval): the kinds resources are given per."""
        if self.settings is None:
            return None
        return "finetune" if self.settings.entry_point == "finetune" else "eval"

    @property
    def stem(self) -> str:
        return self.name.replace(" ", "_").replace("/", "_").replace("@", "-")

    def settings_json(self, sweep_run_id: str) -> str:
        return self.settings.to_json().replace(SWEEP_RUN_PLACEHOLDER, sweep_run_id)


@dataclass
class CellOutcome:
    """How one cell ended and where it ran; ``run_seconds`` is the cell process's own wall time, ``cpu_seconds``
    the CPU time it used."""

    code: int
    last_line: str
    host: str
    gpus: list[str]
    started: float
    ended: float
    run_seconds: float
    node: str = ""
    cpu_seconds: float = 0.0


def last_line(log_path: Path, code: int) -> str:
    lines = (
        [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
        if log_path.exists()
        else []
    )
    errors = [line for line in lines if line.startswith("Error:")]
    return (errors or lines or [f"exit code {code}"])[-1]


def killed_reason(code: int) -> str:
    """Why a process that exited with ``code`` < 0 (the negated signal number) ended."""
    number = -code
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = "unknown signal"
    return f"killed by signal {number} ({name}{', out of memory?' if number == signal.SIGKILL else ''})"


def timed_out_reason(seconds: float) -> str:
    return f"ran past its time limit (--cell-timeout {seconds:g} s) and was killed: raise it, or give it less work"


def run_logged_cell(
    argv: list[str], env: dict[str, str], log_path: Path, gpus: list[str], timeout: float | None = None
) -> CellOutcome:
    """Run one cell process to its end, or kill it after ``timeout`` seconds; its log goes to ``log_path`` and to
    the runs it owned. A cell killed by a signal or for its time limit ends the runs it left RUNNING as FAILED
    with the reason, so the next sweep resumes them; one killed for its time limit exits 1 (no Ray retry)."""
    started = time.time()
    code, cpu_seconds, timed_out = run_cell(argv, env, log_path, timeout)
    ended = time.time()
    reason = last_line(log_path, code) if code >= 0 else killed_reason(code)
    if timed_out:
        code, reason = 1, timed_out_reason(timeout)
    if env.get(CELL_ENV) and env.get(PARENT_ENV):
        try:
            if code < 0 or timed_out:
                _end_dead_runs(env, reason)
            log_to_its_runs(
                log_path,
                env[CELL_ENV],
                env[PARENT_ENV],
                env["MLFLOW_EXPERIMENT_NAME"],
                env["MLFLOW_TRACKING_URI"],
                since=started,
            )
        except MlflowException as exc:  # the store is away: the outcome still counts, the next sweep tidies
            reason += f" (its runs could not be ended: {str(exc).splitlines()[0] if str(exc) else exc})"
    return CellOutcome(
        code,
        reason,
        socket.gethostname(),
        gpus,
        started,
        ended,
        round(ended - started, 3),
        cpu_seconds=round(cpu_seconds, 3),
    )


def _end_dead_runs(env: dict[str, str], reason: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    found = client.get_experiment_by_name(env["MLFLOW_EXPERIMENT_NAME"])
    if found is not None:
        end_dead_cell_runs(client, found.experiment_id, env[CELL_ENV], reason)


class Scheduler:
    """Runs planned cells in dependency order, at most ``cfg.workers`` at once, each with the environment ``env``
    and its log in ``logs``; engines define ``run_one``."""

    def __init__(
        self, cells: list[PlannedCell], env: dict[str, str], logs: Path, sweep_run_id: str, cfg: SweepSettings
    ) -> None:
        self.cells, self.workers = cells, cfg.workers
        self.env, self.logs, self.sweep_run_id, self.settings = env, logs, sweep_run_id, cfg
        self.status: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self.placement: dict[str, dict[str, object]] = {}

    def has_room(self, cell: PlannedCell) -> bool:
        return True

    def take(self, cell: PlannedCell) -> object:
        """Resources a cell holds while it runs (called in the scheduling thread)."""

    def give_back(self, held: object) -> None:
        pass

    def run_one(self, cell: PlannedCell, held: object) -> CellOutcome:
        raise NotImplementedError

    def _record(self, cell: PlannedCell, outcome: CellOutcome, wall: float) -> None:
        self.status[cell.name] = "done" if outcome.code == 0 else "failed"
        if outcome.code != 0:
            self.errors[cell.name] = outcome.last_line
        self.seconds[cell.name] = round(wall, 2)
        self.placement[cell.name] = {
            "host": outcome.host,
            "node": outcome.node or outcome.host,
            "gpus": outcome.gpus,
            "started": outcome.started,
            "ended": outcome.ended,
            "run_seconds": outcome.run_seconds,
            "cpu_seconds": outcome.cpu_seconds,
            "wall_seconds": round(wall, 3),
        }

    def run(self, on_progress) -> None:
        pending = list(self.cells)
        running: dict[Future, tuple[PlannedCell, object, float]] = {}
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            while pending or running:
                for cell in list(pending):
                    blocked = [d for d in cell.after if self.status.get(d) in ("failed", "blocked")]
                    ended = all(d in self.status for d in cell.after)
                    if blocked and cell.needs_success:
                        pending.remove(cell)
                        self.status[cell.name] = "blocked"
                        self.errors[cell.name] = f"needs {blocked[0]}, which failed"
                        on_progress(cell)
                    elif len(running) < self.workers and ended and self.has_room(cell):
                        pending.remove(cell)
                        held = self.take(cell)
                        running[pool.submit(self.run_one, cell, held)] = (cell, held, time.perf_counter())
                if not running:
                    if pending:
                        raise RuntimeError(f"sweep plan cannot proceed: {pending[0].name} waits on unknown cells")
                    continue
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    cell, held, submitted = running.pop(future)
                    self.give_back(held)
                    self._record(cell, _outcome(future, submitted), time.perf_counter() - submitted)
                    on_progress(cell)


def _outcome(future: Future, submitted: float) -> CellOutcome:
    """How a cell ended; running it failing in the engine itself is that cell's failure, not the sweep's."""
    try:
        return future.result()
    except Exception as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no message'}"
        now = time.time()
        return CellOutcome(1, reason, socket.gethostname(), [], now - (time.perf_counter() - submitted), now, 0.0)


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def weights_bytes(locations: list[str]) -> int | None:
    """The largest checkpoint's weight files, when every checkpoint is a local folder; else None."""
    sizes = []
    for location in locations:
        folder = Path(location)
        files = [f for f in folder.iterdir() if f.suffix in WEIGHT_SUFFIXES] if folder.is_dir() else []
        if not files:
            return None
        sizes.append(sum(f.stat().st_size for f in files))
    return max(sizes, default=None)


def default_workers(cfg: SweepSettings, checkpoint_locations: list[str]) -> tuple[int, str]:
    """Cells run at once when ``--workers`` is not given, and why: one per GPU; without GPUs, one per core as far
    as the available memory holds a fine-tuning cell each (1 when the checkpoints' size is not known here)."""
    if cfg.engine != "local":
        return 1, f"the {cfg.engine} engine's default"
    gpus = visible_gpus()
    if gpus:
        return len(gpus), f"{len(gpus)} visible GPUs"
    weights = weights_bytes(checkpoint_locations)
    if weights is None:
        return 1, "the checkpoints are not local folders, so their memory is not known"
    import psutil

    available = psutil.virtual_memory().available
    fits = available // (CELL_PROCESS_BYTES + TRAINING_COPIES * weights)
    cores = usable_cores()
    return max(1, min(cores, fits)), f"{cores} cores, {available / 2**30:.1f} GiB of memory available"


def shared_cores(workers: int) -> int:
    """The cores this process may use, shared among ``workers`` cells at once (at least one each), and no more
    than the environment's ``OMP_NUM_THREADS`` when it sets one (the threads it allows each process)."""
    share = max(1, usable_cores() // workers)
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return min(share, int(limit)) if limit.isdigit() and int(limit) > 0 else share


def gpus_by_kind(cfg: SweepSettings, available: float) -> dict[str, float]:
    """GPUs per kind of cell: as given, else 1 where there are GPUs and 0 where there are none."""
    default = 1 if available and cfg.gpus_per_cell is None else 0
    return cfg.cell_resources("gpus_per_cell", default)


def check_local_gpus(cfg: SweepSettings) -> None:
    """The GPUs a local sweep's cells ask for are there (checked before anything is logged)."""
    visible = len(visible_gpus())
    wanted = max(gpus_by_kind(cfg, visible).values())
    if wanted > visible:
        raise UserError(
            f"--gpus-per-cell asks for {wanted:g} GPUs per cell and this machine has {visible} "
            "visible: lower it, or use --engine ray on a cluster"
        )


class LocalEngine(Scheduler):
    """Cells as processes on this machine; with GPUs, each running cell holds its own GPU slots."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.settings
        self.free_gpus = visible_gpus()
        self.has_gpus = bool(self.free_gpus)
        self.gpus = gpus_by_kind(cfg, len(self.free_gpus))
        self.cpus = cfg.cell_resources("cpus_per_cell", shared_cores(cfg.workers))
        self.cell_timeout = cfg.cell_timeout
        check_local_gpus(cfg)

    def _gpu_count(self, cell: PlannedCell) -> int:
        return math.ceil(self.gpus[cell.kind]) if cell.kind else 0

    def has_room(self, cell: PlannedCell) -> bool:
        return self._gpu_count(cell) <= len(self.free_gpus)

    def take(self, cell: PlannedCell) -> list[str]:
        count = self._gpu_count(cell)
        held, self.free_gpus = self.free_gpus[:count], self.free_gpus[count:]
        return held

    def give_back(self, held: list[str]) -> None:
        self.free_gpus = sorted(self.free_gpus + held, key=lambda g: (len(g), g))

    def run_one(self, cell: PlannedCell, held: list[str]) -> CellOutcome:
        env = {**self.env, CELL_ENV: f"{self.sweep_run_id}/{cell.stem}"}
        if self.has_gpus:  # a cell given no GPU must not take one: hide them all from it
            env["CUDA_VISIBLE_DEVICES"] = ",".join(held)
        if cell.kind:
            env.update(thread_environment(self.cpus[cell.kind]))
        argv = cell.argv
        if cell.settings is not None:
            settings_file = self.logs / f"{cell.stem}.settings.json"
            settings_file.write_text(cell.settings_json(self.sweep_run_id))
            argv = [sys.executable, "-m", "amuro", cell.settings.entry_point, "--config", str(settings_file)]
        timeout = self.cell_timeout if cell.settings is not None else None
        return run_logged_cell(argv, env, self.logs / f"{cell.stem}.log", held, timeout)
