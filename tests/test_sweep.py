"""The study grid: killed and resumed without losing or redoing work; parallel against a tracking server."""

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from sweeps import ROOT, TRACKED, _env, _finished, _runs, _sweep_argv, mlflow_run  # noqa: F401

from amuro.commands.sweep_engine import usable_cores
from amuro.models.series import local_series


def _count_finished(db_path) -> int:
    """Finished tracked runs, read straight from the sqlite file (a tracking client would create its tables)."""
    kinds = ", ".join(f"'{kind}'" for kind in TRACKED)
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(
                "SELECT COUNT(*) FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid "
                f"WHERE runs.status = 'FINISHED' AND tags.key = 'amuro.kind' AND tags.value IN ({kinds})"
            ).fetchone()[0]
    except sqlite3.OperationalError:  # no file or no tables yet, or a write in progress
        return 0


def _wait_for_finished_runs(db_path, count, proc, timeout=600):
    """Block until ``count`` tracked runs have finished (the sweep is then part-way through its grid)."""
    deadline = time.monotonic() + timeout
    while _count_finished(db_path) < count:
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep stopped before reaching the kill"
        time.sleep(0.5)


def _assert_servers_stop(home: Path, timeout: float = 30) -> None:
    """The local tracking servers a killed sweep started (one cell at a time needs none) stop by themselves."""
    ports = [int(log.stem.rsplit("-", 1)[1]) for log in home.glob("mlflow-server-*.log")]
    assert ports or usable_cores() < 2, "the default sweep on several cores ran its cells one at a time"
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) != 0:
                    break
            assert time.monotonic() < deadline, f"the killed sweep left its tracking server on port {port} running"
            time.sleep(0.5)


@pytest.mark.slow
def test_killed_sweep_resumes_without_losing_or_redoing_cells(small_series, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = _env(tmp_path, uri)
    argv = _sweep_argv(small_series, "--checkpoints", "2")
    seed = os.getpid()
    print(f"kill times drawn with random seed {seed}")
    rng = random.Random(seed)
    proc = subprocess.Popen(
        argv, env=env, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for_finished_runs(tmp_path / "mlflow.db", rng.randint(1, 4), proc)
    time.sleep(rng.uniform(0, 2))  # a random moment: inside a cell, between cells, while logging
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _assert_servers_stop(tmp_path / "home")
    finished_before_kill = _finished(_runs(uri))
    final = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-3000:]
    # The study ends with what its runs say of the four findings, each under both definitions.
    verdicts = final.stdout.split("What these runs say of the study's four findings")[1]
    for finding in ("(i) ", "(ii) ", "(iii) ", "(iv) "):
        assert finding in verdicts
    assert verdicts.count("  paper ") == verdicts.count("  amuro ") == 4

    runs = _runs(uri)
    finished = _finished(runs)
    assert set(finished_before_kill) <= set(finished), "a run finished before the kill was lost"
    duplicates = [key for key, count in Counter(finished.values()).items() if count > 1]
    assert not duplicates, "a cell finished twice"
    by_kind = Counter(r.data.tags["amuro.kind"] for r in runs if r.info.run_id in finished)
    steps = {c.step for c in local_series(small_series).select("2")}
    assert by_kind["sweep"] == 1 and by_kind["finetune"] == 2
    evals = [r for r in runs if r.info.run_id in finished and r.data.tags["amuro.kind"] == "eval"]
    cells = Counter(
        (r.data.tags["amuro.step"], r.data.tags["amuro.tuning"], r.data.tags["amuro.eval_dataset"]) for r in evals
    )
    expected = {(str(s), tuning, d) for s in steps for tuning in ("none", "sft") for d in ("synth-nli", "synth-qgen")}
    assert set(cells) == expected and set(cells.values()) == {1}
    sweep_run = next(r for r in runs if r.data.tags.get("amuro.kind") == "sweep")
    assert sweep_run.data.metrics["cells_done"] == sweep_run.data.metrics["cells_total"] == 7
    client = MlflowClient(uri)
    for curve in ("base/synth-qgen/default", "tuned/synth-nli/synth-nli/default"):  # score by step, for the UI
        assert sorted(m.step for m in client.get_metric_history(sweep_run.info.run_id, curve)) == sorted(steps)


@pytest.mark.slow
def test_parallel_sweep_on_local_server_logs_every_cell_once_and_reports_failures(small_series, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = _env(tmp_path, uri)
    data = tmp_path / "broken.jsonl"
    data.write_text('{"p": "A cat sat.", "h": "A cat sat.", "y": "entailment"}\n{not json\n')
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "datasets": [
                    {
                        "name": "broken-nli",
                        "task": "nli",
                        "source": "local",
                        "path": str(data),
                        "splits": {"train": "train"},
                        "fields": {"premise": "p", "hypothesis": "h", "label": "y"},
                        "trainable": True,
                        "labels": ["entailment", "neutral", "contradiction"],
                    }
                ]
            }
        )
    )
    argv = _sweep_argv(
        small_series,
        "--checkpoints",
        "1",
        "--workers",
        "2",
        "--formats",
        "default,instruct",
        "--train-datasets",
        "synth-nli,broken-nli",
        "--dataset-spec",
        str(spec),
    )
    result = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode != 0
    assert "finetune small@step" in result.stderr and "broken-nli" in result.stderr
    assert "line 2" in result.stderr
    server = [line for line in result.stdout.splitlines() if "started a local tracking server" in line]
    assert server, result.stdout[-2000:]
    port = int(server[0].split("http://127.0.0.1:")[1].split(" ")[0])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the sweep left its tracking server running"

    runs = _runs(uri)
    finished = _finished(runs)
    assert len(set(finished.values())) == len(finished)
    evals = [r for r in runs if r.info.run_id in finished and r.data.tags["amuro.kind"] == "eval"]
    cells = Counter(
        (
            r.data.tags["amuro.tuning"],
            r.data.tags["amuro.train_dataset"],
            r.data.tags["amuro.eval_dataset"],
            r.data.tags["amuro.format"],
        )
        for r in evals
    )
    expected = {
        (t, train, d, f)
        for t, train in (("none", "none"), ("sft", "synth-nli"))
        for d in ("synth-nli", "synth-qgen")
        for f in ("default", "instruct")
    }
    assert set(cells) == expected and set(cells.values()) == {1}
    failures = [
        r
        for r in runs
        if r.info.status == "FAILED" and r.data.tags.get("amuro.kind") == "group" and r.data.tags.get("amuro.error")
    ]
    assert any("broken-nli" in r.info.run_name for r in failures)
    sweep_run = next(r for r in runs if r.data.tags.get("amuro.kind") == "sweep")
    assert sweep_run.info.status == "FAILED"
    status = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=sweep_run.info.run_id, artifact_path="status.json", dst_path=str(tmp_path), tracking_uri=uri
            )
        ).read_text()
    )
    not_done = {name: state for name, state in status["status"].items() if state != "done"}
    assert sweep_run.data.metrics["cells_failed"] == 2, (not_done, status["errors"])  # broken finetune, its crosseval
    ran = [name for name, state in status["status"].items() if state == "done"]
    assert ran and all(status["placement"][name]["cpu_seconds"] > 0 for name in ran)


def test_forked_cells_are_fresh_processes_with_their_own_environment_log_and_exit_code(tmp_path):
    from amuro.commands.cell_process import run_cell, start_fork_server

    start_fork_server(database=True)  # in the background, as a sweep does: the first cell below waits for it
    env = {**_env(tmp_path, f"sqlite:///{tmp_path}/mlflow.db"), "AMURO_CELL_MARK": "cell-1"}
    listing = tmp_path / "datasets.log"
    listed = run_cell([sys.executable, "-m", "amuro", "datasets"], env, listing)
    assert listed.code == 0 and listed.cpu_seconds > 0  # the forked cell reports its own CPU time
    assert "synth-nli" in listing.read_text()
    bad = tmp_path / "bad.log"
    assert run_cell([sys.executable, "-m", "amuro", "finetune", "--lr", "-1"], env, bad).code == 2
    assert "Error:" in bad.read_text() and "lr" in bad.read_text()
    other = tmp_path / "other.log"  # anything but an entry point runs as a plain subprocess
    ended = run_cell(
        [
            sys.executable,
            "-c",
            "import os, sys; print(os.environ['AMURO_CELL_MARK']); sum(range(3_000_000)); sys.exit(3)",
        ],
        env,
        other,
    )
    assert ended.code == 3 and other.read_text().strip() == "cell-1" and ended.cpu_seconds > 0
    assert "AMURO_CELL_MARK" not in os.environ


@pytest.mark.parametrize(
    ("workers", "engine", "uri", "database"),
    [
        (1, "local", "sqlite:///mlflow.db", True),  # one cell at a time writes to the file itself
        (2, "local", "sqlite:///mlflow.db", False),  # cells at once write through the sweep's own server
        (2, "local", "postgresql://amuro@db/runs", True),
        (1, "local", "http://127.0.0.1:5000", False),
    ],
)
def test_the_fork_server_imports_the_database_store_only_for_cells_that_write_to_a_database(
    workers, engine, uri, database
):
    from amuro.commands.sweep import cells_write_to_database
    from amuro.core.settings import SweepSettings

    assert cells_write_to_database(SweepSettings(workers=workers, engine=engine, tracking_uri=uri)) is database


def test_a_forked_cell_runs_on_the_threads_its_environment_gives(small_series, tmp_path):
    from amuro.commands.cell_process import run_cell, thread_environment

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**_env(tmp_path, uri), **thread_environment(0.5)}
    log = tmp_path / "cell.log"
    argv = [
        sys.executable,
        "-m",
        "amuro",
        "pretrain-eval",
        "--model",
        str(small_series),
        "--checkpoints",
        "1",
        "--datasets",
        "synth-nli",
        "--formats",
        "default",
        "--max-examples",
        "4",
    ]
    assert run_cell(argv, env, log).code == 0, log.read_text()[-2000:]
    evals = [r for r in _runs(uri) if r.data.tags.get("amuro.kind") == "eval"]
    assert evals and {r.data.params["threads"] for r in evals} == {"1"}


def test_plan_passes_the_preset_and_a_one_epoch_budget_for_tiny(tmp_path):
    from amuro.commands.sweep import plan
    from amuro.core.settings import SweepSettings
    from amuro.core.train_settings import TrainSettings

    cells = plan(SweepSettings(train_datasets="synth-nli"), "tiny", [("step75-tokens1", 75)], tmp_path / "r.html")
    assert [c.name for c in cells] == [
        "pretrain-eval tiny@step75",
        "finetune tiny@step75 synth-nli",
        "crosseval tiny@step75+synth-nli",
        "analysis report",
    ]
    tune = cells[1].settings
    assert tune.train.preset == "tiny" and tune.train.epochs == 1 and not tune.evaluate
    study = plan(
        SweepSettings(train_datasets="synth-nli", train=TrainSettings(preset="amuro-char")),
        "tiny",
        [("step75-tokens1", 75)],
        tmp_path / "r.html",
    )
    assert study[1].settings.train.preset == "amuro-char" and study[1].settings.train.epochs == 3


@pytest.mark.slow
def test_mlflow_run_sweep_with_two_workers_notes_the_launcher_in_the_store(small_series, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    grid = {"workers": 2, "model": small_series, "checkpoints": 1, "train_datasets": "synth-nli"}
    scoring = {"eval_datasets": "synth-nli", "formats": "default", "max_examples": 4, "shots": 1, "bootstrap": 50}
    command = mlflow_run("sweep", {**grid, **scoring, "max_train_examples": 16})
    done = subprocess.run(command, env=_env(tmp_path, uri), capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    runs = _runs(uri)
    sweep_run = next(r for r in runs if r.data.tags.get("amuro.kind") == "sweep")
    assert sweep_run.info.status == "FINISHED" and sweep_run.data.metrics["cells_done"] == 4
    finished = _finished(runs)
    assert len(set(finished.values())) == len(finished) == 4  # sweep, finetune, base and tuned eval
    mlflow.set_tracking_uri(uri)
    try:
        launchers = MlflowClient().search_runs(
            [e.experiment_id for e in MlflowClient().search_experiments()],
            "tags.`amuro.result_run_id` = '" + sweep_run.info.run_id + "'",
        )
    finally:
        mlflow.set_tracking_uri(None)
    assert len(launchers) == 1 and launchers[0].info.status == "FINISHED"
    assert launchers[0].data.tags["amuro.entry_point"] == "sweep"


@pytest.mark.slow
def test_two_identical_sweeps_started_at_once_on_one_server_finish_every_cell_once(
    small_series, tmp_path, mlflow_server
):
    env = _env(tmp_path, mlflow_server)
    argv = _sweep_argv(
        small_series,
        "--checkpoints",
        "1",
        "--eval-datasets",
        "synth-nli",
        "--max-examples",
        "4",
        "--max-train-examples",
        "16",
        "--bootstrap",
        "50",
        "--tracking-uri",
        mlflow_server,
        "--experiment",
        "two-sweeps",
    )
    sweeps = [
        subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [s.communicate(timeout=900) for s in sweeps]
    assert [s.returncode for s in sweeps] == [0, 0], [err[-3000:] for _, err in outputs]
    assert any("joining sweep run" in out for out, _ in outputs)
    runs = _runs(mlflow_server, "two-sweeps")
    finished = _finished(runs)
    assert sorted(Counter(finished.values()).values()) == [1] * 4  # sweep, finetune, base and tuned eval
    assert not [r for r in runs if r.info.status == "RUNNING"]
    by_kind = Counter(r.data.tags["amuro.kind"] for r in runs if r.info.run_id in finished)
    assert by_kind == {"sweep": 1, "finetune": 1, "eval": 2}


def test_default_workers_are_one_per_gpu_else_one_per_core_as_far_as_memory_holds(small_series, monkeypatch):
    import psutil

    from amuro.commands.sweep_engine import default_workers
    from amuro.core.settings import SweepSettings

    folders = [c.location for c in local_series(small_series).select("all")]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert default_workers(SweepSettings(), folders)[0] == usable_cores()
    assert default_workers(SweepSettings(), ["allenai/OLMo-1B-hf"])[0] == 1  # a hub repo: size unknown here
    assert default_workers(SweepSettings(engine="ray"), folders)[0] == 1
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=2**29))
    count, why = default_workers(SweepSettings(), folders)
    assert count == 1 and "0.5 GiB" in why
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert default_workers(SweepSettings(), folders) == (3, "3 visible GPUs")


def test_local_cells_share_the_machine_cores_among_the_workers_unless_told(tmp_path, monkeypatch):
    from amuro.commands.sweep_engine import LocalEngine
    from amuro.core.settings import SweepSettings

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    for workers in (1, 2, cores + 1):
        engine = LocalEngine([], {}, tmp_path, "run", SweepSettings(workers=workers))
        assert set(engine.cpus.values()) == {max(1, cores // workers)}
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the environment's thread budget per process caps the share
    assert set(LocalEngine([], {}, tmp_path, "run", SweepSettings(workers=1)).cpus.values()) == {1}
    told = LocalEngine([], {}, tmp_path, "run", SweepSettings(workers=1, cpus_per_cell="finetune=3,eval=1"))
    assert told.cpus == {"finetune": 3.0, "eval": 1.0}


def test_the_sweep_process_counts_gpus_and_keys_its_settings_without_importing_torch():
    code = (
        "import sys\n"
        "from amuro.commands.sweep_engine import visible_gpus\n"
        "from amuro.core.settings import SweepSettings\n"
        "gpus = visible_gpus()\n"
        "SweepSettings().run_key('sweep')\n"
        "assert gpus or 'torch' not in sys.modules, 'torch was imported without a GPU in view'\n"
    )
    env = {name: value for name, value in os.environ.items() if name != "CUDA_VISIBLE_DEVICES"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
