"""The ray engine: each sweep cell a Ray task running the same entry point with the cell's serialized settings.

Only this module imports Ray (``pip install 'amuro[ray]'``). A task asks for the CPUs and GPUs of its kind of
cell, runs the cell as a process on its node (``CUDA_VISIBLE_DEVICES`` = the GPUs Ray gave it), uploads the
cell's log to the runs it owned, and is retried up to ``--max-retries`` times when its worker or node died
(a fine-tune then resumes in the same run from its uploaded checkpoint; finished cells are reused through
their run keys); one that runs past ``--cell-timeout`` is killed, a failed cell that is not retried. Every
worker starts with the sweep's ``runtime_env``: the offline flags, cache folders and tracking server set
here. The analysis report, a plain command, runs on this machine.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ray

from amuro.commands.sweep_engine import CellOutcome, PlannedCell, Scheduler, gpus_by_kind, run_logged_cell
from amuro.core.credentials import split_credentials
from amuro.core.errors import UserError
from amuro.core.ownership import CELL_ENV
from amuro.core.settings import SweepSettings
from amuro.core.system_metrics import NODE_ENV

CONNECT_SECONDS = 20
FORWARDED_PREFIXES = ("MLFLOW_", "AMURO_", "HF_", "TRANSFORMERS_", "TOKENIZERS_")
RUNTIME_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "AMURO_HOME")


class CellDied(Exception):
    """The cell process was killed (its worker or node went away): Ray retries the task."""


def _run_cell_task(
    name: str, stem: str, entry_point: str, settings_json: str, env: dict[str, str], timeout: float | None
) -> CellOutcome:
    gpus = [str(g) for g in ray.get_gpu_ids()]
    cell_env = {NODE_ENV: socket.gethostname(), **os.environ, **env, "CUDA_VISIBLE_DEVICES": ",".join(gpus)}
    with tempfile.TemporaryDirectory(prefix="amuro-cell-") as folder:  # the log is uploaded to the cell's runs
        settings_file = Path(folder) / f"{stem}.settings.json"
        settings_file.write_text(settings_json)
        argv = [sys.executable, "-m", "amuro", entry_point, "--config", str(settings_file)]
        outcome = run_logged_cell(argv, cell_env, Path(folder) / f"{stem}.log", gpus, timeout)
    outcome.node = ray.get_runtime_context().get_node_id()
    if outcome.code < 0:
        raise CellDied(f"{name} was killed by signal {-outcome.code} on {socket.gethostname()}")
    return outcome


def check_reachable(address: str) -> None:
    """Fail within seconds, naming the address, when nothing answers there (Ray itself retries for minutes)."""
    if address == "auto":
        return
    parsed = urllib.parse.urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parsed.hostname, parsed.port or 6379
    except ValueError:
        host, port = None, None
    if not host:
        raise UserError(f"--address {address!r} is not a Ray address: use auto, host:port or ray://head:10001")
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise UserError(
            f"Ray cluster at {address} is unreachable ({exc.strerror or exc}): start it (ray start "
            "--head) or fix --address"
        ) from None


def _cluster_resources() -> tuple[float, float]:
    """The most GPUs and CPUs any one alive node has."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    return (max((n.get("GPU", 0.0) for n in nodes), default=0.0), max((n.get("CPU", 0.0) for n in nodes), default=0.0))


def runtime_env(tracking_uri: str) -> dict[str, dict[str, str]]:
    """Ray's ``runtime_env`` of the sweep's job: every worker, on any node, starts with the offline flags and
    cache folders (``HF_HOME``, ``AMURO_HOME``) set on this machine and the tracking server (without its
    credentials: the Ray dashboard shows this; cells get them with the rest of their environment)."""
    env_vars = {name: os.environ[name] for name in RUNTIME_VARIABLES if name in os.environ}
    env_vars["MLFLOW_TRACKING_URI"] = split_credentials(tracking_uri)[0]
    return {"env_vars": env_vars}


@contextmanager
def ray_session(cfg: SweepSettings, tracking_uri: str) -> Iterator[None]:
    """Join the cluster at ``--address`` (its resources checked against the cells'), or start a local one."""
    try:
        ray.init(
            address=cfg.address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env=runtime_env(tracking_uri),
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"Ray cluster at {cfg.address}" if cfg.address else "a local Ray instance"
        raise UserError(f"{where} could not be joined ({str(exc).splitlines()[0]}): check --address") from None
    try:
        gpus, cpus = _cluster_resources()
        wanted_gpus = max(gpus_by_kind(cfg, gpus).values())
        wanted_cpus = max(cfg.cell_resources("cpus_per_cell", 1).values())
        if wanted_gpus > gpus:
            raise UserError(
                f"--gpus-per-cell asks for {wanted_gpus:g} GPUs per cell and no node of the Ray "
                f"cluster has more than {gpus:g}: lower it"
            )
        if wanted_cpus > cpus:
            raise UserError(
                f"--cpus-per-cell asks for {wanted_cpus:g} CPUs per cell and no node of the Ray "
                f"cluster has more than {cpus:g}: lower it"
            )
        yield
    finally:
        ray.shutdown()


class RayEngine(Scheduler):
    """Cells as Ray tasks with their kind's resources; plain commands (the report) on this machine."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cfg, env = self.settings, self.env
        self.forwarded = {
            name: value
            for name, value in env.items()
            if name.startswith(FORWARDED_PREFIXES) and (name != NODE_ENV or name in os.environ)
        }  # a cell names its own node
        gpus, _ = _cluster_resources()
        self.gpus = gpus_by_kind(cfg, gpus)
        self.cpus = cfg.cell_resources("cpus_per_cell", 1)
        self.max_retries, self.cell_timeout = cfg.max_retries, cfg.cell_timeout
        self.task = ray.remote(_run_cell_task)

    def run_one(self, cell: PlannedCell, held: object) -> CellOutcome:
        if cell.settings is None:
            return run_logged_cell(cell.argv, self.env, self.logs / f"{cell.stem}.log", [])
        env = {**self.forwarded, CELL_ENV: f"{self.sweep_run_id}/{cell.stem}"}
        submitted = time.time()
        ref = self.task.options(
            num_cpus=self.cpus[cell.kind],
            num_gpus=self.gpus[cell.kind],
            name=cell.name,
            max_retries=self.max_retries,
            retry_exceptions=[CellDied],
        ).remote(
            cell.name,
            cell.stem,
            cell.settings.entry_point,
            cell.settings_json(self.sweep_run_id),
            env,
            self.cell_timeout,
        )
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            return CellOutcome(
                1,
                f"the Ray task failed after {self.max_retries} retries: {reason}",
                "",
                [],
                submitted,
                time.time(),
                0.0,
            )
