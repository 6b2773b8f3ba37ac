"""Faults injected into a small grid on a local tracking server, and what survives them.

Trains a small checkpoint series once, then for each fault runs the same small grid (1 checkpoint x 2 training
sets, 1 eval set, the report) in a fresh store served by ``mlflow server``, injects the fault, runs the same
sweep again as a user would, and counts: tracked runs that finished more than once for one run key (target 0)
and planned runs that never finished after the rerun (cells lost, target 0).

    python benchmarks/faults.py [--keep DIR] [FAULT]       (FAULT: a word of one fault's name, to run it alone)

Faults: a fine-tune cell killed with SIGKILL (what the out-of-memory killer does); the tracking server killed
mid-sweep (then started again over the same store); a second sweep with another format over the first
sweep's fine-tunes; two identical sweeps started at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import SMALL_GRID, offline_env, options, series_options
from mlflow.tracking import MlflowClient

from amuro.core.local_server import LocalServer

SERIES = series_options("faults")
GRID = options({"checkpoints": 1, "train_datasets": "synth-nli,synth-paraphrase", **SMALL_GRID})
GRID += options({"max_train_examples": 200, "workers": 2})
TRACKED = ("eval", "finetune", "sweep")


def _env(home: Path, uri: str | None = None) -> dict[str, str]:
    return offline_env(home, uri)


def _sweep(series: str, home: Path, uri: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "amuro", "sweep", "--model", series, *GRID, *extra],
        env=_env(home, uri),
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_run(uri: str, kind: str, deadline: float = 600) -> dict:
    """The owner tags of the first RUNNING, claimed run of ``kind``."""
    client, end = MlflowClient(uri), time.monotonic() + deadline
    while time.monotonic() < end:
        experiment = client.get_experiment_by_name("amuro-char")
        if experiment:
            found = client.search_runs(
                [experiment.experiment_id],
                f"tags.`amuro.kind` = '{kind}' and tags.`amuro.claim` = 'won' and attributes.status = 'RUNNING'",
            )
            if found:
                return found[0].data.tags
        time.sleep(0.2)
    raise TimeoutError(f"no {kind} run started")


def _count(uri: str) -> tuple[int, int, int]:
    """(tracked runs finished, keys finished more than once, tracked runs left unfinished)."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("amuro-char")
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    tracked = [r for r in runs if r.data.tags.get("amuro.kind") in TRACKED]
    finished = Counter(r.data.tags.get("amuro.run_key") for r in tracked if r.info.status == "FINISHED")
    unfinished = {r.data.tags.get("amuro.run_key") for r in tracked if r.info.status != "FINISHED"} - set(finished)
    return sum(finished.values()), sum(1 for n in finished.values() if n > 1), len(unfinished)


def _error_line(stderr: str) -> str:
    errors = [
        "Error:" + line.split("Error:", 1)[1] for line in stderr.replace("\r", "\n").splitlines() if "Error:" in line
    ]
    tracebacks = stderr.count("Traceback")
    return (errors[-1][:100] if errors else "no error line") + (f" ({tracebacks} tracebacks)" if tracebacks else "")


def killed_cell(series, home, server):
    sweep = _sweep(series, home, server.uri)
    os.kill(int(_wait_for_run(server.uri, "finetune")["amuro.pid"]), signal.SIGKILL)
    _, err = sweep.communicate()
    (home / "fault.log").write_text(err)
    return f"sweep exit {sweep.returncode}: {_error_line(err)}", _sweep(series, home, server.uri).wait()


def killed_server(series, home, server):
    sweep = _sweep(series, home, server.uri)
    _wait_for_run(server.uri, "finetune")
    server.stop()
    _, err = sweep.communicate()
    (home / "fault.log").write_text(err)
    server.start()
    return f"sweep exit {sweep.returncode}: {_error_line(err)}", _sweep(series, home, server.uri).wait()


def reused_fine_tunes(series, home, server):
    first = _sweep(series, home, server.uri).wait()
    second = _sweep(series, home, server.uri, "--formats", "default,instruct")
    _, err = second.communicate()
    return f"first sweep exit {first}, second exit {second.returncode}", second.returncode


def two_at_once(series, home, server):
    sweeps = [_sweep(series, home, server.uri) for _ in range(2)]
    codes = [sweep.wait() for sweep in sweeps]
    return f"exits {codes}", max(codes)


FAULTS = {
    "cell killed (SIGKILL)": killed_cell,
    "tracking server killed mid-sweep": killed_server,
    "second sweep over the first's fine-tunes": reused_fine_tunes,
    "two identical sweeps at once": two_at_once,
}


def main(argv: list[str]) -> None:
    keep = Path(argv[1]).resolve() if argv[:1] == ["--keep"] else None
    with contextlib.nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "amuro", "pretrain", *SERIES],
            env=_env(root, f"sqlite:///{root}/s.db"),
            cwd=root,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        series = str(next((root / "series").glob("faults*")))
        rows = []
        only = [name for name in FAULTS if argv[-1:] and argv[-1] in name] or list(FAULTS)
        for name, inject in ((name, FAULTS[name]) for name in only):
            home = root / name.split(" ")[0]
            home.mkdir()
            with LocalServer(home / "mlflow.db", home / "artifacts", log=home / "server.log") as server:
                started = time.perf_counter()
                happened, rerun = inject(series, home, server)
                finished, twice, lost = _count(server.uri)
            rows.append((name, happened, rerun, finished, twice, lost, time.perf_counter() - started))
            print(f"{name}: done in {rows[-1][-1]:.0f} s", flush=True)
        print(f"\n{'fault':42s} {'rerun':>5s} {'finished':>8s} {'twice':>5s} {'lost':>4s}  what happened")
        for name, happened, rerun, finished, twice, lost, _ in rows:
            print(f"{name:42s} {rerun:5d} {finished:8d} {twice:5d} {lost:4d}  {happened}")
        print(
            "(rerun: exit code of the recovering run; twice: keys finished more than once, target 0; lost: "
            "tracked runs never finished, target 0)"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
