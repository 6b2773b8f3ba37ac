"""Fixtures: the plant of ``planted.py``, logged to a real ``mlflow server`` on a loopback
port, and read both through the server and straight from its sqlite file."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

from planted import EXPERIMENT, Store, plant  # noqa: E402
from session_files import locked, shared_folder  # noqa: E402


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Prediction tables are cached under $AMURO_HOME, else XDG_CACHE_HOME; keep each test's
    cache its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("AMURO_HOME", str(tmp_path / "amuro-home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)


def _start_server(directory: Path) -> dict:
    """Start ``mlflow server`` on a free loopback port and plant the runs through it.

    Artifacts go to a local directory (``--default-artifact-root``), so the same store can
    also be read directly through its sqlite file.
    """
    from amuro.core.local_server import LocalServer

    directory.mkdir(parents=True, exist_ok=True)
    database = directory / "mlflow.db"
    server = LocalServer(database, directory / "artifacts", log=directory / "server.log", serve_artifacts=False)
    try:
        uri = server.start(timeout=60)
    except Exception:
        raise RuntimeError((directory / "server.log").read_text()[-2000:]) from None
    state = {"uri": uri, "database": str(database), "pid": server.process.pid, "users": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's own deprecation notices while logging
        state["runs"] = plant(uri)
    return state


def _stop_server(state: dict) -> None:
    # uvicorn runs as a child of `mlflow server`: stop the process group the server leads.
    try:
        os.killpg(state["pid"], signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _exited(state["pid"]):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(state["pid"], signal.SIGKILL)


def _exited(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid  # reaps it when this process started it
    except ChildProcessError:  # started by another test worker, which reaps it
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True
        except OSError:  # no /proc: ask the process itself
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> dict:
    """A real ``mlflow server`` holding the plant: {uri, database, runs, ...}.

    Parallel test workers share one server (starting one costs seconds of CPU): the first
    to need it starts it, each user is counted, and the last one to finish stops it.
    """
    root = shared_folder(tmp_path_factory)
    state_file, lock = root / "analysis-server.json", root / "analysis-server.lock"
    with locked(lock):
        state = json.loads(state_file.read_text()) if state_file.exists() else None
        if state is None:
            # A folder of its own: a worker that needs the server after the last user stopped it plants anew.
            state = _start_server(Path(tempfile.mkdtemp(prefix="analysis-server-", dir=root)))
        state["users"] += 1
        state_file.write_text(json.dumps(state))
    yield state
    with locked(lock):
        state = json.loads(state_file.read_text())
        state["users"] -= 1
        if state["users"] == 0:
            _stop_server(state)
            state_file.unlink()
        else:
            state_file.write_text(json.dumps(state))


@pytest.fixture(scope="session")
def server_store(mlflow_server) -> Store:
    return Store(mlflow_server["uri"], "server", mlflow_server["runs"])


@pytest.fixture(scope="session")
def sqlite_store(mlflow_server) -> Store:
    """The same store, read straight from its sqlite file."""
    return Store(f"sqlite:///{mlflow_server['database']}", "sqlite", mlflow_server["runs"])


@pytest.fixture(scope="session", params=["sqlite", "server"])
def store(request) -> Store:
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture(scope="session")
def runs(store):
    """The planted eval runs as the loader reads them."""
    from analysis.runs import load_eval_runs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_eval_runs(EXPERIMENT, store.uri)


ROOT = Path(__file__).resolve().parents[2]


def run_analysis(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m analysis ARGS`` as the docs write it, run in ``cwd`` (where MLflow's
    default store ``sqlite:///mlflow.db`` lives) with this checkout's package."""
    env = {
        key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")
    }
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def published_template(tmp_path_factory) -> dict:
    """An empty store into which ``python -m analysis import-published`` imported the study's
    released results: {database, output}. Imported once for all test workers (it costs tens
    of seconds) and never written again: each test works on a copy (``published_store``)."""
    root = shared_folder(tmp_path_factory)
    directory, log = root / "published-template", root / "published-template.log"
    with locked(root / "published-template.lock"):
        if not log.exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            completed = run_analysis("import-published", cwd=directory)
            assert completed.returncode == 0, completed.stderr
            log.write_text(completed.stderr)
    return {"database": directory / "mlflow.db", "output": log.read_text()}


@pytest.fixture
def published_store(published_template, tmp_path) -> dict:
    """This test's own copy of the imported store, as ``mlflow.db`` in its working folder
    (MLflow's default store there): {directory, uri, output}."""
    database = tmp_path / "mlflow.db"
    shutil.copyfile(published_template["database"], database)
    return {"directory": tmp_path, "uri": f"sqlite:///{database}", "output": published_template["output"]}


@pytest.fixture
def published_runs(published_store):
    from analysis.runs import load_eval_runs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_eval_runs("amuro-char-published", published_store["uri"])
