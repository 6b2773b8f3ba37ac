"""How fast the analysis reads and analyses 10,000 eval runs from a tracking server.

Starts a local ``mlflow server`` (sqlite backend in a temporary directory, MLflow's default
of 4 workers), fills it with contract-tagged eval runs, then times, through the server's
REST API:

- loading the eval runs into a frame (``analysis.runs.load_eval_runs``);
- computing gains, forgetting, transfer, sensitivity and learned (+ gains per group);
- for comparison, loading the same runs straight from the sqlite file.

Target: loading + computing 10,000 runs in at most 10 s.

    python benchmarks/analysis_scale.py [--runs 10000]

The runs are written straight into the server's sqlite store with MLflow's own table
definitions in a few bulk inserts (logging 10,000 runs one request at a time would take
minutes and is not what is measured); three more runs logged through the REST API are read
back alongside them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from amuro.core.local_server import LocalServer  # noqa: E402
from analysis.published.ids import TASKS  # noqa: E402

EXPERIMENT = "amuro-scale"
MODELS = ["allenai/OLMo-1B-hf", "EleutherAI/pythia-160m"]
# Eval sets of the study, with their task families as the published tables name them.
EVAL_DATASETS = {
    name: TASKS[name]
    for name in ("mnli", "rte", "gpt3nli", "paws", "qqp", "stsb", "xsum", "cnn_dailymail", "socialiqa", "tweetqa")
}
TRAININGS = [("none", "none"), ("sft", "mnli"), ("sft", "paws"), ("sft", "xsum"), ("it", "tulu")]
FORMAT_SHOTS = [("default", 4), ("instruct", 4), ("io", 4), ("default", 0)]


def cpu_seconds(process: subprocess.Popen) -> float:
    """CPU time used so far by the server and its worker processes."""
    import psutil

    parent = psutil.Process(process.pid)
    total = 0.0
    for member in [parent, *parent.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def grid(count: int):
    """Contract tags and metrics for ``count`` eval runs of a study-shaped grid."""
    rng = np.random.default_rng(0)
    steps = itertools.count(1000, 1000)
    cells = []
    while len(cells) < count:
        step = next(steps)
        for model, (dataset, task), (tuning, train), (prompt_format, shots) in itertools.product(
            MODELS, EVAL_DATASETS.items(), TRAININGS, FORMAT_SHOTS
        ):
            if tuning == "none":
                relation = "base"
            elif train == dataset:
                relation = "in-domain"
            elif EVAL_DATASETS.get(train) == task:
                relation = "out-of-domain"
            else:
                relation = "cross-task"
            cells.append((model, step, dataset, task, tuning, train, relation, prompt_format, shots))
    for model, step, dataset, task, tuning, train, relation, prompt_format, shots in cells[:count]:
        score = float(np.clip(rng.normal(0.3 + step / 1e5 + (tuning != "none") * 0.1, 0.05), 0, 1))
        se = 0.01
        tags = {
            "amuro.kind": "eval",
            "amuro.model": model,
            "amuro.revision": f"step{step}",
            "amuro.step": str(step),
            "amuro.tokens": str(step * 4_000_000),
            "amuro.tuning": tuning,
            "amuro.train_dataset": train,
            "amuro.eval_dataset": dataset,
            "amuro.task": task,
            "amuro.relation": relation,
            "amuro.format": prompt_format,
            "amuro.shots": str(shots),
            "amuro.metric": "rougeL" if task in ("summary", "qgen") else "accuracy",
            "amuro.seed": "0",
            "amuro.source_run_id": "",
            "amuro.run_key": uuid.uuid4().hex,
        }
        metrics = {
            "score": score,
            "score_ci_low": score - 1.96 * se,
            "score_ci_high": score + 1.96 * se,
            "score_se": se,
            "n": 1000.0,
        }
        yield tags, metrics


def bulk_insert(database: Path, experiment_id: str, artifact_root: str, runs) -> None:
    """Write finished runs into the sqlite store through MLflow's own table definitions."""
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlRun,
        SqlTag,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{database}", artifact_root)
    now = int(time.time() * 1000)
    run_rows, tag_rows, metric_rows = [], [], []
    for index, (tags, metrics) in enumerate(runs):
        run_id = uuid.uuid4().hex
        run_rows.append(
            dict(
                run_uuid=run_id,
                name=f"eval-{index}",
                source_type="LOCAL",
                source_name="bench",
                entry_point_name="",
                user_id="bench",
                status="FINISHED",
                start_time=now + index,
                end_time=now + index + 1,
                source_version="",
                lifecycle_stage="active",
                artifact_uri=f"{artifact_root}/{experiment_id}/{run_id}/artifacts",
                experiment_id=int(experiment_id),
            )
        )
        tag_rows.extend(dict(run_uuid=run_id, key=k, value=v) for k, v in tags.items())
        tag_rows.append(dict(run_uuid=run_id, key="mlflow.runName", value=f"eval-{index}"))
        metric_rows.extend(
            dict(run_uuid=run_id, key=k, value=v, timestamp=now, step=0, is_nan=False) for k, v in metrics.items()
        )
    with store.ManagedSessionMaker() as session:
        session.execute(SqlRun.__table__.insert(), run_rows)
        session.execute(SqlTag.__table__.insert(), tag_rows)
        session.execute(SqlMetric.__table__.insert(), metric_rows)
        session.execute(SqlLatestMetric.__table__.insert(), metric_rows)


def log_through_api(uri: str, experiment_id: str, runs) -> list[str]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag

    client = MlflowClient(uri)
    ids = []
    for tags, metrics in runs:
        run = client.create_run(experiment_id)
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return ids


def timed(label: str, function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    seconds = time.perf_counter() - start
    print(f"  {label:<28} {seconds:7.2f} s")
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()

    from mlflow import MlflowClient

    from analysis import (
        forgetting,
        gains,
        gains_by_group,
        learned,
        sensitivity,
        transfer,
    )
    from analysis.runs import load_eval_runs

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        server = LocalServer(directory / "mlflow.db", directory / "artifacts", log=directory / "server.log")
        uri, process = server.start(timeout=60), server.process
        try:
            client = MlflowClient(uri)
            experiment_id = client.create_experiment(EXPERIMENT)
            artifact_root = client.get_experiment(experiment_id).artifact_location.rsplit("/", 1)[0]
            runs = list(grid(args.runs + 3))
            start = time.perf_counter()
            bulk_insert(directory / "mlflow.db", experiment_id, artifact_root, runs[:-3])
            with contextlib.redirect_stdout(io.StringIO()):  # MLflow's "View run" notices
                api_ids = log_through_api(uri, experiment_id, runs[-3:])
            print(f"logged {args.runs} + 3 eval runs in {time.perf_counter() - start:.1f} s (server {uri})")

            print(f"timings through the server, {args.runs + 3} eval runs:")
            server_cpu, client_cpu = cpu_seconds(process), time.process_time()
            frame, load_s = timed("load eval runs", load_eval_runs, EXPERIMENT, uri)
            server_cpu = cpu_seconds(process) - server_cpu
            client_cpu = time.process_time() - client_cpu
            print(
                f"    (CPU: server {server_cpu:.1f} s, this process {client_cpu:.1f} s, on "
                f"{os.cpu_count()} cores; wall time grows when other work shares them)"
            )
            assert len(frame) == args.runs + 3, len(frame)
            by_id = frame.set_index("run_id")
            for run_id, (tags, _) in zip(api_ids, runs[-3:]):
                assert by_id.loc[run_id, "run_key"] == tags["amuro.run_key"]

            gain, gain_s = timed("gains", gains, frame)
            learned_table, learned_s = timed("learned", learned, frame)
            compute_s = gain_s + learned_s
            for label, function, arguments in [
                ("forgetting", forgetting, (frame,)),
                ("transfer", transfer, (frame,)),
                ("sensitivity", sensitivity, (frame,)),
                ("gains by group", gains_by_group, (gain.table, learned_table)),
            ]:
                compute_s += timed(label, function, *arguments)[1]
            total = load_s + compute_s
            print(f"  {'compute (all analyses)':<28} {compute_s:7.2f} s")
            print(f"  {'load + compute':<28} {total:7.2f} s  (target <= 10 s: {'met' if total <= 10 else 'NOT met'})")
            print(f"  gain pairs: {len(gain.table)}, unpaired runs: {len(gain.missing)}")
            timed("load (sqlite file directly)", load_eval_runs, EXPERIMENT, f"sqlite:///{directory / 'mlflow.db'}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
