"""Shared fixtures: offline environment, throwaway tracking stores, and one small checkpoint series."""

from __future__ import annotations

import gc
import os
import shutil
from pathlib import Path

for _name, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
    "TQDM_DISABLE": "1",
}.items():
    os.environ[_name] = _value
os.environ.pop("MLFLOW_RUN_ID", None)
os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
os.environ.pop("MLFLOW_EXPERIMENT_ID", None)

import mlflow  # noqa: E402
import pytest  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from own_warnings import blamed_past_module_dispatch  # noqa: E402
from series_settings import SMALL_SERIES  # noqa: E402
from session_files import locked, shared_folder  # noqa: E402


def pytest_configure(config):
    """Each test worker's processes run torch on the worker's share of the cores (unless the environment says
    otherwise): with two threads each, two workers' processes on two cores took twice the CPU time for the same
    work. Set before the workers start (they inherit it) and before any test module imports torch."""
    workers = getattr(config, "workerinput", {}).get("workercount") or getattr(config.option, "numprocesses", None)
    from amuro.commands.sweep_engine import usable_cores

    workers = workers if isinstance(workers, int) and workers > 0 else 1
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(max(1, usable_cores() // workers)))


def pytest_collection_finish(session):
    """What collection imported (torch, transformers, MLflow: half a million objects) lives as long as the
    worker: frozen, it is left out of every garbage collection the tests make, and accelerate collects around
    each training (half a second each over them)."""
    gc.freeze()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Inside pytest's own warning capture: deprecated calls through a model's dispatch are blamed on the caller."""
    with blamed_past_module_dispatch():
        return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """How two workers share the suite out (``--dist loadgroup``): the slow end-to-end tests first, each on its
    own, so that neither worker is left with a minute-long test at the end; every other test on the worker that
    runs the rest of its module, where that module's fixtures already are. A module that names its own group
    (``pytestmark = pytest.mark.xdist_group(...)``) runs on one worker, slow tests included: its fixture is built
    once."""
    for item in items:
        if item.get_closest_marker("slow") is None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def amuro_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("amuro-home")
    os.environ["AMURO_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """A sqlite file in which MLflow has created its tables, built once per test session: MLflow takes a second
    or two of CPU to create them in a new file, which most tests would otherwise do once or more."""
    shared = shared_folder(tmp_path_factory)
    template = shared / "empty-store.db"
    with locked(shared / "empty-store.lock"):
        if not template.exists():
            building = shared / "empty-store.building.db"
            MlflowClient(f"sqlite:///{building}").search_experiments()
            building.rename(template)
    return template


@pytest.fixture(autouse=True)
def work_in_tmp(tmp_path, monkeypatch, empty_store):
    """Run each test in its own folder, whose ``mlflow.db`` (the default store there, and the file of the
    ``tracking_uri`` store) starts empty: a sqlite store's artifacts go to ./mlruns of the working folder."""
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch):
    """A fresh sqlite tracking store for one test."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # unset: a later test's MLFLOW_TRACKING_URI must win again


@pytest.fixture(scope="session")
def small_series(tmp_path_factory, amuro_home):
    """A 4-checkpoint series trained in seconds, logged to its own store; returns its local folder.

    Built once per test session under a lock and shared read-only by every worker."""
    shared = shared_folder(tmp_path_factory)
    built = shared / "small-series.path"
    with locked(shared / "small-series.lock"):
        if not built.exists():
            built.write_text(_build_small_series(shared / "small-series"))
    return built.read_text()


def _build_small_series(store: Path) -> str:
    from amuro.commands.pretrain import pretrain
    from amuro.core.settings import PretrainSettings
    from amuro.models.series import find_pretrain_run

    store.mkdir(exist_ok=True)
    previous, folder, home = mlflow.get_tracking_uri(), os.getcwd(), os.environ["AMURO_HOME"]
    os.environ["AMURO_HOME"] = str(store / "home")
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    os.chdir(store)
    try:
        pretrain(PretrainSettings(series="small", experiment="series", **SMALL_SERIES))
        run = find_pretrain_run(mlflow.get_experiment_by_name("series").experiment_id, "small")
        return run.data.tags["amuro.series_dir"]
    finally:
        mlflow.set_tracking_uri(previous)
        os.chdir(folder)
        os.environ["AMURO_HOME"] = home


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, empty_store):
    """A real ``mlflow server`` on a free loopback port over a sqlite store, one per test process: the tests that
    use it each work in an experiment of their own. Its store and log are in the folder ``mlflow-server`` of the
    process's temporary folder (``tmp_path_factory.getbasetemp()``)."""
    from amuro.core.local_server import LocalServer

    folder = tmp_path_factory.mktemp("mlflow-server", numbered=False)
    shutil.copyfile(empty_store, folder / "server.db")
    with LocalServer(folder / "server.db", folder / "server-artifacts", log=folder / "mlflow-server.log") as server:
        yield server.uri
