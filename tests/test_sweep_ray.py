"""The ray engine on a local Ray cluster of two nodes (one CPU and one declared GPU each)."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict

import mlflow
import psutil
import pytest
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from amuro.commands.sweep_ray import check_reachable
from amuro.core.errors import UserError
from amuro.core.local_server import free_port

TRACKED = ("eval", "finetune", "sweep")
pytestmark = pytest.mark.xdist_group("ray-cluster")  # one worker runs this module, on one cluster


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """Two nodes on this machine; HOME is a tmp folder while it runs, since Ray writes ~/.ray."""
    previous = os.environ.get("HOME")
    os.environ["HOME"] = str(tmp_path_factory.mktemp("ray-home"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1})
    cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        cluster.shutdown()
        if previous is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = previous


def _env(tmp_path):
    env = {**os.environ, "AMURO_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/x.db"}
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(name, None)
    return env


def _sweep_argv(series, address, uri, *extra):
    return [
        sys.executable,
        "-m",
        "amuro",
        "sweep",
        "--engine",
        "ray",
        "--address",
        address,
        "--tracking-uri",
        uri,
        "--model",
        str(series),
        "--checkpoints",
        "1",
        "--train-datasets",
        "synth-nli",
        "--eval-datasets",
        "synth-nli",
        "--formats",
        "default",
        "--max-examples",
        "4",
        "--bootstrap",
        "50",
        "--shots",
        "1",
        "--workers",
        "2",
        "--gpus-per-cell",
        "1",
        *extra,
    ]


def _runs(uri, experiment="amuro-char"):
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id], max_results=5000)


def _finished_keys(runs):
    return Counter(
        r.data.tags["amuro.run_key"]
        for r in runs
        if r.info.status == "FINISHED" and r.data.tags.get("amuro.kind") in TRACKED
    )


def _wait_for(condition, proc, timeout=600):
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert proc.poll() is None, "the sweep ended before the moment the test waits for"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _ray_worker(pid: int) -> psutil.Process:
    """The Ray worker process a cell process runs under."""
    for process in psutil.Process(pid).parents():
        if " ".join(process.cmdline()).startswith("ray::"):
            return process
    raise AssertionError(f"cell process {pid} does not run under a Ray worker")


def _gpu_overlaps(placement):
    by_gpu = defaultdict(list)
    for name, where in placement.items():
        for gpu in where["gpus"]:
            by_gpu[(where["node"], gpu)].append((where["started"], where["ended"], name))
    overlaps = []
    for spans in by_gpu.values():
        spans.sort()
        overlaps += [(a[2], b[2]) for a, b in zip(spans, spans[1:]) if b[0] < a[1]]
    return overlaps, len(by_gpu)


@pytest.mark.slow
def test_grid_runs_each_cell_once_one_cell_per_gpu_and_a_killed_finetune_resumes_in_its_run(
    small_series, tmp_path, mlflow_server, ray_cluster
):
    cluster = ray_cluster
    argv = _sweep_argv(
        small_series,
        cluster.address,
        mlflow_server,
        "--epochs",
        "4",
        "--max-train-examples",
        "96",
        "--experiment",
        "grid",
    )
    proc = subprocess.Popen(
        argv, env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def checkpointed_finetune():
        runs = [
            r
            for r in _runs(mlflow_server, "grid")
            if r.data.tags.get("amuro.kind") == "finetune"
            and r.info.status == "RUNNING"
            and r.data.tags.get("amuro.checkpoint_step")
        ]
        return runs[0] if runs else None

    killed = _wait_for(checkpointed_finetune, proc)
    _ray_worker(int(killed.data.tags["amuro.pid"])).send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]

    runs = _runs(mlflow_server, "grid")
    assert set(_finished_keys(runs).values()) == {1} and sum(_finished_keys(runs).values()) == 4
    finetunes = [r for r in runs if r.data.tags.get("amuro.kind") == "finetune"]
    assert [r.info.run_id for r in finetunes] == [killed.info.run_id]
    assert finetunes[0].info.status == "FINISHED"
    client = MlflowClient(tracking_uri=mlflow_server)
    steps = [m.step for m in client.get_metric_history(killed.info.run_id, "train_loss")]
    assert steps and len(steps) == len(set(steps)), "a train_loss step was logged twice"
    log = mlflow.artifacts.download_artifacts(
        run_id=killed.info.run_id, artifact_path="logs", dst_path=str(tmp_path / "logs"), tracking_uri=mlflow_server
    )
    assert "restored the checkpoint of step" in "".join(open(os.path.join(log, f)).read() for f in os.listdir(log))

    sweep_run = next(r for r in runs if r.data.tags.get("amuro.kind") == "sweep")
    status = json.load(
        open(
            mlflow.artifacts.download_artifacts(
                run_id=sweep_run.info.run_id,
                artifact_path="status.json",
                dst_path=str(tmp_path),
                tracking_uri=mlflow_server,
            )
        )
    )
    overlaps, gpu_slots = _gpu_overlaps(status["placement"])
    assert not overlaps and gpu_slots >= 1
    assert status["engine"] == "ray" and all(v == "done" for v in status["status"].values())

    again = subprocess.run(argv, env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "the sweep already finished" in again.stdout
    assert len(_runs(mlflow_server, "grid")) == len(runs), "running the sweep again added a run"


def _one_line_error(result):
    """The one line of a user error (MLflow's own INFO lines about creating a fresh store aside)."""
    lines = [line for line in result.stderr.splitlines() if line.strip() and " INFO mlflow." not in line]
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("Error:"), result.stderr[-2000:]
    return lines[0]


def test_bad_engine_input_fails_in_one_line(small_series, tmp_path, ray_cluster):
    cluster = ray_cluster
    env = _env(tmp_path)

    def sweep(*args, timeout=120):
        return subprocess.run(
            [sys.executable, "-m", "amuro", "sweep", "--model", str(small_series), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    assert "unknown engine 'slurm'" in _one_line_error(sweep("--engine", "slurm"))
    address = f"127.0.0.1:{free_port()}"
    line = _one_line_error(sweep("--engine", "ray", "--address", address))
    assert address in line and "unreachable" in line
    started = time.monotonic()  # the check itself, apart from the seconds a loaded machine takes to import
    with pytest.raises(UserError, match="unreachable"):
        check_reachable("192.0.2.1:6379")  # TEST-NET-1: packets go nowhere, so only the timeout ends it
    assert time.monotonic() - started < 30
    line = _one_line_error(sweep("--engine", "ray", "--address", cluster.address))
    assert "sqlite:///" in line and "--tracking-uri http" in line
    assert not [r for r in _runs(env["MLFLOW_TRACKING_URI"]) if r.data.tags.get("amuro.kind") == "sweep"]


def test_more_gpus_per_cell_than_any_node_has_fails_in_one_line_logging_nothing(
    small_series, tmp_path, mlflow_server, ray_cluster
):
    cluster = ray_cluster
    argv = _sweep_argv(small_series, cluster.address, mlflow_server, "--experiment", "gpus")
    argv[argv.index("--gpus-per-cell") + 1] = "finetune=2,eval=1"
    result = subprocess.run(argv, env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    line = _one_line_error(result)
    assert "--gpus-per-cell asks for 2 GPUs" in line and "more than 1" in line
    assert not [r for r in _runs(mlflow_server, "gpus") if r.data.tags.get("amuro.kind") == "sweep"]


@pytest.mark.slow
def test_a_node_removed_mid_cell_loses_nothing(small_series, tmp_path, mlflow_server, ray_cluster):
    cluster = ray_cluster
    worker = next(iter(cluster.worker_nodes))
    argv = _sweep_argv(
        small_series,
        cluster.address,
        mlflow_server,
        "--checkpoints",
        "2",
        "--epochs",
        "2",
        "--max-train-examples",
        "64",
        "--experiment",
        "node",
    )
    proc = subprocess.Popen(
        argv, env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def both_nodes_busy():
        running = {
            r.data.tags.get("amuro.pid")
            for r in _runs(mlflow_server, "node")
            if r.info.status == "RUNNING" and r.data.tags.get("amuro.kind") in ("finetune", "group")
        }
        return len(running) >= 2

    _wait_for(both_nodes_busy, proc)
    finished_before = {r.info.run_id for r in _runs(mlflow_server, "node") if r.info.status == "FINISHED"}
    cluster.remove_node(worker)
    try:
        out, err = proc.communicate(timeout=900)
    finally:  # the module's later tests run on two nodes again
        cluster.add_node(num_cpus=1, num_gpus=1)
        cluster.wait_for_nodes()
    assert proc.returncode == 0, err[-3000:]
    runs = _runs(mlflow_server, "node")
    assert finished_before <= {r.info.run_id for r in runs if r.info.status == "FINISHED"}
    keys = _finished_keys(runs)
    assert set(keys.values()) == {1} and sum(keys.values()) == 7  # sweep, 2 finetune, 2 base + 2 tuned evals


def test_ray_is_imported_by_the_ray_engine_only():
    code = "import sys, amuro.cli, amuro.commands.sweep; assert 'ray' not in sys.modules, 'ray was imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
