"""Wall time of the embedded default study, end to end, the share of each stage, and its predictions
against a reference run of the same study.

Runs, in a fresh temporary store: ``amuro pretrain`` (the ``tiny`` series) then ``amuro sweep`` with its
defaults (every checkpoint, the four synthetic training sets, every offline eval set in all three formats,
200 scored items per eval cell, the report). Target: 8 minutes or less on 2 cores.

    python benchmarks/study_walltime.py [--keep DIR] [--reference DIR] [extra sweep options...]
    python benchmarks/study_walltime.py --compare DIR --reference DIR

``--keep DIR`` runs in DIR (store, AMURO_HOME, report) and leaves it there, e.g. as a reference for a later
engine. ``--reference DIR`` compares every eval run with the run of the same cell (model, step, tuning,
training set, eval set, format, shots, seeds, protocol) in the kept store DIR,
item by item, and prints the share of items whose prediction differs (target 0). ``--compare DIR`` compares
a kept store with the reference without running anything. Besides wall time it prints the CPU time of the
study's processes (pretraining, the sweep and its tracking server, every cell as the cell reports it) and of
each stage, a measure other work on the machine changes less than wall time, and the part of it that is the
model arithmetic itself (the eval runs' scoring time, the fine-tunes' training time, pretraining): divided by
the cores, the wall time no scheduling can go below.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

EXPERIMENT = "amuro-char"
# What identifies an eval cell across two stores (its run key also hashes run ids, which differ per store).
CELL_TAGS = (
    "model",
    "step",
    "tuning",
    "train_dataset",
    "train_seed",
    "eval_dataset",
    "format",
    "shots",
    "seed",
    "protocol",
)


def cell_identity(run) -> tuple[str, ...]:
    return tuple(run.data.tags.get(f"amuro.{name}", "") for name in CELL_TAGS)


def _options(argv: list[str]) -> tuple[dict[str, Path], list[str]]:
    named: dict[str, Path] = {}
    extra = list(argv)
    for option in ("--keep", "--reference", "--compare"):
        if option in extra:
            at = extra.index(option)
            named[option[2:]] = Path(extra[at + 1]).resolve()
            del extra[at : at + 2]
    return named, extra


def _store_uri(folder: Path) -> str:
    return f"sqlite:///{folder}/mlflow.db"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_study(folder: Path, extra: list[str]) -> dict[str, float]:
    """Pretrain and sweep in ``folder``; returns wall and CPU seconds, in all and of pretraining (the CPU
    seconds of the processes this one waited for: pretraining, the sweep and its tracking server)."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": _store_uri(folder),
        "AMURO_HOME": str(folder),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(name, None)
    started, cpu_started = time.perf_counter(), _children_cpu()
    subprocess.run(
        [sys.executable, "-m", "amuro", "pretrain"], env=env, cwd=folder, check=True, stdout=subprocess.DEVNULL
    )
    pretrain_seconds, pretrain_cpu = time.perf_counter() - started, _children_cpu() - cpu_started
    subprocess.run([sys.executable, "-m", "amuro", "sweep", *extra], env=env, cwd=folder, check=True)
    return {
        "total": time.perf_counter() - started,
        "cpu": _children_cpu() - cpu_started,
        "pretrain": pretrain_seconds,
        "pretrain_cpu": pretrain_cpu,
    }


def _client(folder: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=_store_uri(folder))


def _finished_runs(folder: Path, kind: str) -> list:
    client = _client(folder)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise SystemExit(f"{folder} holds no {EXPERIMENT} experiment: give a folder kept with --keep")
    return client.search_runs(
        [experiment.experiment_id],
        f"tags.`amuro.kind` = '{kind}' and attributes.status = 'FINISHED'",
        max_results=50000,
    )


def _eval_runs(folder: Path) -> list:
    return _finished_runs(folder, "eval")


def sweep_status(folder: Path) -> dict:
    """The sweep run's status.json: each cell's state, wall seconds and placement (with its CPU seconds)."""
    sweep_run = _finished_runs(folder, "sweep")[0]
    return json.loads(_artifact(folder, sweep_run, "status.json").read_text())


def stage_seconds(status: dict, measure: str = "wall_seconds") -> dict[str, float]:
    """Seconds per stage (pretrain-eval, finetune, crosseval, analysis): the cells' wall or CPU seconds."""
    stages: dict[str, float] = defaultdict(float)
    for name, where in status["placement"].items():
        stages[name.split(" ")[0]] += where.get(measure, 0.0)
    return stages


def _artifact(folder: Path, run, name: str) -> Path:
    """A local store's artifact file, read in place (looked up under ``folder`` when the store was moved)."""
    uri = run.info.artifact_uri.removeprefix("file://")
    candidates = [Path(uri) / name] + [
        folder / root / run.info.experiment_id / run.info.run_id / "artifacts" / name
        for root in ("mlruns", "mlartifacts")
    ]
    for path in candidates:
        if path.exists():
            return path
    raise SystemExit(f"run {run.info.run_id} in {folder} has no {name} at {candidates[0]}")


def _predictions(folder: Path, run) -> dict[str, str]:
    """item_id -> prediction of one eval run's predictions.json (a table: columns and rows)."""
    table = json.loads(_artifact(folder, run, "predictions.json").read_text())
    columns = table["columns"]
    item, prediction = columns.index("item_id"), columns.index("prediction")
    return {str(row[item]): row[prediction] for row in table["data"]}


def compare(folder: Path, reference: Path) -> dict[str, float]:
    """Every eval run of ``folder`` against the run of the same cell (``CELL_TAGS``) in ``reference``, item by
    item."""
    ours = {cell_identity(run): run for run in _eval_runs(folder)}
    theirs = {cell_identity(run): run for run in _eval_runs(reference)}
    items = differing = 0
    cells_differing: list[str] = []
    for key, run in ours.items():
        if key not in theirs:
            continue
        new, old = _predictions(folder, run), _predictions(reference, theirs[key])
        changed = sum(new.get(item) != prediction for item, prediction in old.items())
        changed += sum(item not in old for item in new)
        items += len(old)
        differing += changed
        if changed:
            cells_differing.append(f"{run.info.run_name} ({changed})")
    matched = len(set(ours) & set(theirs))
    print(
        f"predictions vs reference {reference}: {matched} eval runs matched by their cell tags "
        f"({len(ours) - matched} only here, {len(theirs) - matched} only in the reference)"
    )
    share = differing / items if items else 0.0
    print(f"  items whose prediction differs: {differing} of {items} ({100 * share:.3f} %); target 0")
    for line in cells_differing[:10]:
        print(f"    {line}")
    return {"matched": matched, "items": items, "differing": differing, "share": share}


def report(folder: Path, measured: dict[str, float]) -> None:
    total = measured["total"]
    status = sweep_status(folder)
    walls = {**stage_seconds(status), "pretrain": measured["pretrain"]}
    cells_cpu = stage_seconds(status, "cpu_seconds")
    cpus = {**cells_cpu, "pretrain": measured["pretrain_cpu"]}
    # Forked cells are not children of the sweep: their CPU time comes from the cells' own reports.
    cpu = measured["cpu"] + sum(cells_cpu.values())
    runs = _eval_runs(folder)
    items = [r.data.metrics.get("n", 0) for r in runs]
    print(f"study wall time: {total / 60:.1f} min ({total:.0f} s); target <= 8 min on 2 cores")
    print(
        f"CPU time of the study's processes: {cpu / 60:.1f} min ({cpu:.0f} s), {cpu / total:.2f} cores busy on average"
    )
    print(f"eval cells: {len(runs)}, scored items per cell: min {min(items):.0f}, max {max(items):.0f}")
    print(
        f"  {'stage':14s} {'wall s':>8s} {'share':>6s} {'CPU s':>8s}   (stages' wall seconds overlap with workers > 1)"
    )
    for stage, seconds in sorted(walls.items(), key=lambda kv: -kv[1]):
        print(f"  {stage:14s} {seconds:8.1f} {100 * seconds / total:5.1f}% {cpus.get(stage, 0.0):8.1f}")
    scoring = sum(
        r.data.metrics["n"] / r.data.metrics["examples_per_second"]
        for r in runs
        if r.data.metrics.get("examples_per_second")
    )
    training = sum(r.data.metrics.get("train_runtime", 0.0) for r in _finished_runs(folder, "finetune"))
    threads = {r.data.params.get("threads") for r in runs}
    if threads != {"1"}:  # on several threads a cell's wall seconds are not its CPU seconds
        print(
            f"the model arithmetic's wall seconds: scoring {scoring:.0f} s, fine-tuning {training:.0f} s "
            f"(cells on {', '.join(sorted(t or '?' for t in threads))} threads; run one-thread cells, "
            "--workers = cores, for the least wall time any scheduling reaches)"
        )
        return
    floor = scoring + training + measured["pretrain_cpu"]
    from amuro.commands.sweep_engine import usable_cores

    cores = usable_cores()
    print(
        f"the model arithmetic alone: scoring {scoring:.0f} s + fine-tuning {training:.0f} s + pretraining "
        f"{measured['pretrain_cpu']:.0f} s CPU = {floor / 60:.1f} min: at this run's speed, at least "
        f"{floor / cores / 60:.1f} min of wall time on {cores} cores however the cells are scheduled"
    )


def main(argv: list[str]) -> None:
    named, extra = _options(argv)
    if "compare" in named:
        if "reference" not in named:
            raise SystemExit("--compare DIR needs --reference DIR: the kept store to compare with")
        compare(named["compare"], named["reference"])
        return
    keep = named.get("keep")
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        measured = run_study(folder, extra)
        report(folder, measured)
        if "reference" in named:
            compare(folder, named["reference"])


if __name__ == "__main__":
    main(sys.argv[1:])
