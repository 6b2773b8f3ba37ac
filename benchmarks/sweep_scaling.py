"""How the sweep scales with workers on each engine, and what Ray's scheduling costs per cell.

Trains a small checkpoint series once, then runs the same small grid (2 checkpoints x 1 training set, 1 eval
set, the report) with 1 and 2 workers on the local engine and on the ray engine (a local Ray instance this
machine starts and stops), each in a fresh store. Prints the wall time of each sweep, the speed-up of 2
workers over 1 per engine, and Ray's per-cell scheduling overhead: a cell's wall time as the sweep saw it
minus the run time of the cell process itself (both in the sweep run's ``status.json``).

    python benchmarks/sweep_scaling.py [--keep DIR]
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SMALL_GRID, offline_env, options, series_options

SERIES = series_options("bench")
GRID = options({"checkpoints": "all", "train_datasets": "synth-nli", **SMALL_GRID, "max_train_examples": 16})


def _env(folder: Path) -> dict[str, str]:
    return offline_env(folder, f"sqlite:///{folder}/mlflow.db", MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING="false")


def _status(folder: Path) -> dict:
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db")
    experiment = client.get_experiment_by_name("amuro-char")
    sweep_run = client.search_runs([experiment.experiment_id], "tags.`amuro.kind` = 'sweep'")[0]
    path = mlflow.artifacts.download_artifacts(
        run_id=sweep_run.info.run_id,
        artifact_path="status.json",
        dst_path=str(folder),
        tracking_uri=client.tracking_uri,
    )
    return json.loads(Path(path).read_text())


def run_sweep(root: Path, series: str, engine: str, workers: int) -> tuple[float, dict]:
    folder = root / f"{engine}-{workers}"
    folder.mkdir()
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "amuro",
            "sweep",
            "--model",
            series,
            *GRID,
            "--engine",
            engine,
            "--workers",
            str(workers),
        ],
        env=_env(folder),
        cwd=folder,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started, _status(folder)


def main(argv: list[str]) -> None:
    keep = Path(argv[1]).resolve() if argv[:1] == ["--keep"] else None
    with contextlib.nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "amuro", "pretrain", *SERIES],
            env=_env(root),
            cwd=root,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        series = str(next((root / "series").glob("bench*")))
        results = {}
        for engine in ("local", "ray"):
            for workers in (1, 2):
                results[engine, workers] = run_sweep(root, series, engine, workers)
                print(f"{engine:5s} engine, {workers} worker(s): {results[engine, workers][0]:6.1f} s", flush=True)
        print(f"\ncells per sweep: {len(results['local', 1][1]['status'])}, {os.cpu_count()} CPU cores")
        for engine in ("local", "ray"):
            one, two = results[engine, 1][0], results[engine, 2][0]
            print(f"{engine:5s} engine: 1 worker {one:6.1f} s, 2 workers {two:6.1f} s, speed-up {one / two:.2f}x")
        print(f"ray vs local with 2 workers: {results['ray', 2][0] / results['local', 2][0]:.2f}x the wall time")
        for engine in ("local", "ray"):
            for workers in (1, 2):
                overhead = [
                    p["wall_seconds"] - p["run_seconds"]
                    for name, p in results[engine, workers][1]["placement"].items()
                    if name != "analysis report"
                ]
                print(
                    f"{engine:5s} scheduling overhead per cell, {workers} worker(s): median "
                    f"{statistics.median(overhead):.2f} s, max {max(overhead):.2f} s over {len(overhead)} cells"
                )
        print("(ray's first cells include starting its worker processes; local cells are forked from a warm server)")


if __name__ == "__main__":
    main(sys.argv[1:])
