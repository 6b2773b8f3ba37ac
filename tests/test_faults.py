"""Faults as one line each, nothing logged lost, and the next run resuming: a full disk, a tracking server that
goes away mid-command, a tracking URI holding a password, and refusals that need no store."""

import errno
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from sweeps import _sweep_argv

from amuro.cli import main
from amuro.core import tracking
from amuro.core.local_server import LocalServer

PASSWORD = "s3cret-pa55"
EVAL = [
    "--checkpoints",
    "1",
    "--datasets",
    "synth-summary",
    "--shots",
    "1",
    "--max-examples",
    "16",
    "--batch-size",
    "1",
    "--max-new-tokens",
    "30",
    "--stop",
    "none",
    "--bootstrap",
    "100",
]


def _one_error_line(text: str) -> str:
    assert "Traceback" not in text, text[-3000:]
    [line] = [line for line in text.splitlines() if line.startswith("Error:")]
    return line


def test_a_full_disk_while_the_model_is_saved_is_one_line_and_the_rerun_finishes(
    tracking_uri, small_series, monkeypatch
):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/model.safetensors")

    args = [
        "finetune",
        "--experiment",
        "disk",
        "--model",
        small_series,
        "--dataset",
        "synth-nli",
        "--epochs",
        "1",
        "--max-train-examples",
        "16",
        "--eval",
        "false",
    ]
    with monkeypatch.context() as patch:
        patch.setattr("amuro.commands.finetune.log_tuned_model", full)
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert _one_error_line(result.output).startswith(
        "Error: no space left on the disk while writing /data/model.safetensors: free space"
    )
    [failed] = MlflowClient().search_runs([tracking.connect("disk")], "tags.`amuro.kind` = 'finetune'")
    assert failed.info.status == "FAILED" and "No space left on device" in failed.data.tags["amuro.error"]
    assert failed.data.metrics["train_loss"] > 0  # what was logged before the fault stays

    assert CliRunner().invoke(main, args).exit_code == 0
    [done] = MlflowClient().search_runs([tracking.connect("disk")], "tags.`amuro.kind` = 'finetune'")
    assert (done.info.run_id, done.info.status) == (failed.info.run_id, "FINISHED")


@pytest.mark.slow
def test_a_tracking_server_that_goes_away_mid_command_is_one_line_and_the_rerun_resumes(small_series, tmp_path):
    command = [sys.executable, "-m", "amuro", "pretrain-eval", "--experiment", "gone", "--model", small_series, *EVAL]
    # The with block stops the server should the test fail before it does.
    with LocalServer(tmp_path / "store.db", tmp_path / "artifacts", log=tmp_path / "server.log") as server:
        uri = server.uri
        # The cell retries each request as a user's would; only MLflow's waits between the tries are shortened.
        backoff = {"MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0"}
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, **backoff}
        cell = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        client, deadline = MlflowClient(uri), time.monotonic() + 300
        while not client.search_runs([tracking_experiment(client, "gone")], "tags.`amuro.kind` = 'eval'"):
            assert cell.poll() is None and time.monotonic() < deadline, "the cell never started"
            time.sleep(0.1)
        server.stop()
    _, err = cell.communicate(timeout=300)
    assert cell.returncode != 0
    assert _one_error_line(err) == (
        f"Error: the tracking server {uri} stopped answering: restart it and run the "
        "same command again: finished runs are kept and unfinished ones resume"
    )

    server = LocalServer(tmp_path / "store.db", tmp_path / "artifacts")
    uri = server.start()
    try:
        again = subprocess.run(
            command,
            env={**os.environ, "MLFLOW_TRACKING_URI": uri},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0, again.stderr[-3000:]
        runs = MlflowClient(uri).search_runs(
            [tracking_experiment(MlflowClient(uri), "gone")], "tags.`amuro.kind` = 'eval'"
        )
        assert [r.info.status for r in runs] == ["FINISHED"]  # the interrupted run, resumed
    finally:
        server.stop()


def tracking_experiment(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else "0"


@pytest.mark.slow
def test_a_tracking_uri_with_a_password_works_and_the_password_is_never_written(
    small_series, tmp_path, mlflow_server, tmp_path_factory
):
    secret_uri = mlflow_server.replace("http://", f"http://amuro:{PASSWORD}@")
    home = tmp_path / "home"
    env = {**os.environ, "AMURO_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    # The suite's small sweep; the options given again here replace its own.
    argv = _sweep_argv(small_series, "--tracking-uri", secret_uri, "--experiment", "password", "--checkpoints", "1")
    argv += ["--eval-datasets", "synth-nli", "--max-examples", "4", "--max-train-examples", "16", "--workers", "1"]
    done = subprocess.run(
        argv,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(mlflow_server)
    [sweep] = client.search_runs([tracking_experiment(client, "password")], "tags.`amuro.kind` = 'sweep'")
    assert sweep.data.params["tracking_uri"] == mlflow_server.replace("http://", "http://***@")
    assert PASSWORD not in done.stdout + done.stderr
    server_files = tmp_path_factory.getbasetemp() / "mlflow-server"  # the server's store, artifacts and log
    written = [
        path
        for folder in (tmp_path, server_files)
        for path in folder.rglob("*")
        if path.is_file() and PASSWORD.encode() in path.read_bytes()
    ]
    assert server_files.exists() and not written, f"the password was written to {written}"

    unreachable = subprocess.run(
        [
            sys.executable,
            "-m",
            "amuro",
            "--tracking-uri",
            f"http://amuro:{PASSWORD}@127.0.0.1:9/",
            "pretrain-eval",
            "--model",
            small_series,
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = _one_error_line(unreachable.stderr)
    assert line.startswith("Error: tracking server http://***@127.0.0.1:9/ is unreachable")
    assert PASSWORD not in unreachable.stderr + unreachable.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gpus-per-cell", "2"], "Error: --gpus-per-cell asks for 2 GPUs per cell and this machine has 0 visible"),
        (["--workers", "abc"], "Error: workers takes a whole number or nothing (left empty: local engine: one per GPU"),
    ],
)
def test_sweep_refusals_that_need_no_store_log_nothing(tmp_path, args, message):
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "AMURO_HOME": str(tmp_path / "h"),
        "CUDA_VISIBLE_DEVICES": "",
    }
    refused = subprocess.run(
        [sys.executable, "-m", "amuro", "sweep", "--checkpoints", "1", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert _one_error_line(refused.stderr).startswith(message)
    if (tmp_path / "mlflow.db").exists():
        client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
        experiments = [e.experiment_id for e in client.search_experiments()]
        assert not client.search_runs(experiments)
