"""What a sweep cell costs to start: the same small eval cell as a fresh ``python -m amuro`` process and forked
from the sweep's fork server, which imported the libraries once.

Trains a small checkpoint series once, then scores one checkpoint on one eval set (8 items) several times each
way, every time in a fresh copy of the same sqlite store (as a sweep's cells share one). Prints each way's
median wall time, the ratio, and the seconds the fork server takes to start (paid once per sweep).

    python benchmarks/cell_startup.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SMALL_GRID, offline_env, options, series_options

SCORING = {name: value for name, value in SMALL_GRID.items() if name != "eval_datasets"}
CELL = ["pretrain-eval", "--model", "bench", "--checkpoints", "1", "--datasets", SMALL_GRID["eval_datasets"]]
CELL += options(SCORING)


def _fresh_store(template: Path, root: Path, name: str) -> tuple[Path, dict[str, str]]:
    folder = root / name
    folder.mkdir()
    shutil.copy(template / "mlflow.db", folder / "mlflow.db")
    return folder, offline_env(template / "home", f"sqlite:///{folder}/mlflow.db")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    from amuro.commands.cell_process import run_cell, start_fork_server

    with tempfile.TemporaryDirectory(prefix="amuro-cell-startup-") as scratch:
        root = Path(scratch)
        os.chdir(root)  # forked cells write their artifacts to ./mlruns of the fork server's folder
        template = root / "template"
        template.mkdir()
        env = offline_env(template / "home", f"sqlite:///{template}/mlflow.db")
        subprocess.run(
            [sys.executable, "-m", "amuro", "pretrain", *series_options("bench")],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        started = time.perf_counter()
        start_fork_server(database=True)
        warm = run_cell([sys.executable, "-m", "amuro", "--help"], env, root / "warm-up.log")
        server_seconds = time.perf_counter() - started
        assert warm.code == 0, (root / "warm-up.log").read_text()

        fresh, forked = [], []
        for repeat in range(repeats):
            folder, cell_env = _fresh_store(template, root, f"fresh-{repeat}")
            began = time.perf_counter()
            with open(folder / "cell.log", "w") as log:
                fresh_cell = [sys.executable, "-m", "amuro", *CELL]
                subprocess.run(fresh_cell, env=cell_env, cwd=folder, stdout=log, stderr=log, check=True)
            fresh.append(time.perf_counter() - began)
            folder, cell_env = _fresh_store(template, root, f"forked-{repeat}")
            began = time.perf_counter()
            ended = run_cell([sys.executable, "-m", "amuro", *CELL], cell_env, folder / "cell.log")
            forked.append(time.perf_counter() - began)
            assert ended.code == 0, (folder / "cell.log").read_text()

    fresh_median, forked_median = statistics.median(fresh), statistics.median(forked)
    print(f"an eval cell as a fresh process:      {fresh_median:.2f} s (median of {repeats})")
    print(f"the same cell forked from the server: {forked_median:.2f} s (median of {repeats})")
    print(f"forked / fresh: {forked_median / fresh_median:.2f}x the time")
    print(f"the fork server's start (its preload, once per sweep): {server_seconds:.2f} s")


if __name__ == "__main__":
    main()
