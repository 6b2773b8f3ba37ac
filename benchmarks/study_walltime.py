"""Wall time of the embedded default study, end to end, and the share of each stage.

Runs, in a fresh temporary store: ``amuro pretrain`` (the ``tiny`` series) then ``amuro sweep`` with its
defaults (every checkpoint, the four synthetic training sets, every offline eval set in all three formats,
200 scored items per eval cell, the report). Target: 15 minutes or less on 2 cores.

    python benchmarks/study_walltime.py [--keep DIR] [--workers N] [extra sweep options...]

``--keep DIR`` runs in DIR (store, AMURO_HOME, report) and leaves it there for a look afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def main(extra: list[str]) -> None:
    keep = None
    if extra[:1] == ["--keep"]:
        keep, extra = Path(extra[1]).resolve(), extra[2:]
        keep.mkdir(parents=True, exist_ok=True)
    with (contextlib.nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory()) as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", "AMURO_HOME": tmp,
               "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
            env.pop(name, None)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "amuro", "pretrain"], env=env, cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        pretrain_seconds = time.perf_counter() - started
        subprocess.run([sys.executable, "-m", "amuro", "sweep", *extra], env=env, cwd=tmp, check=True)
        total = time.perf_counter() - started

        import mlflow
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
        client = MlflowClient()
        experiment = client.get_experiment_by_name("amuro-char")
        sweep_run = client.search_runs([experiment.experiment_id], "tags.`amuro.kind` = 'sweep'")[0]
        status = json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=sweep_run.info.run_id, artifact_path="status.json", dst_path=tmp)).read_text())
        stages: dict[str, float] = defaultdict(float)
        for name, seconds in status["seconds"].items():
            stages[name.split(" ")[0]] += seconds
        stages["pretrain"] = pretrain_seconds
        evals = client.search_runs([experiment.experiment_id], "tags.`amuro.kind` = 'eval'", max_results=50000)
        items = [r.data.metrics.get("n", 0) for r in evals]
        print(f"study wall time: {total / 60:.1f} min ({total:.0f} s); target <= 15 min on 2 cores")
        print(f"eval cells: {len(evals)}, scored items per cell: min {min(items):.0f}, max {max(items):.0f}")
        for stage, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
            print(f"  {stage:14s} {seconds:8.1f} s  {100 * seconds / total:5.1f} %")


if __name__ == "__main__":
    main(sys.argv[1:])
