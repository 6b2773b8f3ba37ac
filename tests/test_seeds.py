"""Seed replicates: finetune --seeds trains one run per seed, their eval runs carry amuro.train_seed, and the
analysis reports each cell once with the across-seed spread; bad --seeds fail in one line."""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from amuro.cli import main
from amuro.commands.crosseval import crosseval
from amuro.commands.sweep import plan
from amuro.core import tracking
from amuro.core.settings import CrossevalSettings, EvalSettings, SweepSettings

ROOT = Path(__file__).resolve().parents[1]
EVAL = EvalSettings(max_examples=8, shots=1, bootstrap=100)


def test_two_seeds_are_two_replicates_reported_as_one_cell(tracking_uri, small_series, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "finetune",
            "--experiment",
            "seeds",
            "--model",
            small_series,
            "--dataset",
            "synth-nli",
            "--epochs",
            "1",
            "--max-train-examples",
            "24",
            "--batch-size",
            "8",
            "--seeds",
            "0,1",
            "--eval-max-examples",
            "8",
            "--eval-shots",
            "1",
            "--eval-bootstrap",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    client = MlflowClient()
    experiment_id = tracking.connect("seeds")
    (group_run,) = client.search_runs([experiment_id], "tags.`amuro.entry_point` = 'finetune'")
    group = group_run.info.run_id
    assert f"2 replicates (seeds 0, 1) under run {group}" in result.output
    tuned_runs = client.search_runs([experiment_id], "tags.`amuro.kind` = 'finetune'")
    assert sorted(r.data.tags["amuro.seed"] for r in tuned_runs) == ["0", "1"]
    assert {r.data.tags["mlflow.parentRunId"] for r in tuned_runs} == {group}
    assert client.get_run(group).data.tags["amuro.kind"] == "group"
    evals = client.search_runs([experiment_id], "tags.`amuro.kind` = 'eval'")
    tuned = {r.data.tags["amuro.train_seed"]: r for r in evals if r.data.tags["amuro.tuning"] == "sft"}
    (base,) = [r for r in evals if r.data.tags["amuro.tuning"] == "none"]
    assert sorted(tuned) == ["0", "1"] and base.data.tags["amuro.train_seed"] == ""
    assert {r.data.tags["amuro.source_run_id"] for r in tuned.values()} == {r.info.run_id for r in tuned_runs}
    assert "+synth-nli seed1 → synth-nli [default]" in tuned["1"].info.run_name

    out = tmp_path / "gains.json"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "analysis", "gains", "--experiment", "seeds", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())
    scores = [r.data.metrics["score"] for r in tuned.values()]
    base_score = base.data.metrics["score"]
    mean_gain = statistics.fmean(score - base_score for score in scores)
    assert row["eval_dataset"] == "synth-nli" and row["n_seeds"] == 2
    assert row["tuned"] == pytest.approx(statistics.fmean(scores))
    assert row["seed_std"] == pytest.approx(statistics.stdev(scores))
    assert row["gain"] == pytest.approx(mean_gain)
    assert row["ci_method"] == "two-level-bootstrap" and row["ci_low"] <= mean_gain <= row["ci_high"]

    # crosseval of the group reuses the replicates' cells and draws their mean against the step
    parent_ids = crosseval(
        CrossevalSettings(experiment="seeds", runs=group, datasets="synth-nli", formats="default", eval=EVAL)
    )
    assert sorted(parent_ids) == sorted(r.info.run_id for r in tuned.values())
    (crosseval_group,) = client.search_runs([experiment_id], "tags.`amuro.entry_point` = 'crosseval'")
    (point,) = client.get_metric_history(crosseval_group.info.run_id, "tuned/synth-nli/synth-nli/default")
    assert point.step == int(base.data.tags["amuro.step"]) and point.value == pytest.approx(statistics.fmean(scores))


@pytest.mark.parametrize("command", ["finetune", "sweep"])
@pytest.mark.parametrize(
    ("seeds", "message"), [(",", "lists no seed"), ("0,1,0", "repeats 0"), ("1,x", "comma-separated integers")]
)
def test_bad_seeds_fail_in_one_line(tracking_uri, command, seeds, message):
    result = CliRunner().invoke(main, [command, "--experiment", "bad", "--seeds", seeds])
    assert result.exit_code != 0 and "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if " INFO " not in line and line.strip()]
    assert message in line


def test_sweep_plans_one_finetune_cell_per_seed_before_the_crosseval():
    cfg = SweepSettings(experiment="s", train_datasets="synth-nli", seeds="3,4")
    cells = {cell.name: cell for cell in plan(cfg, "small", [("step-10", 10)], Path("report.html"))}
    replicates = [cells[f"finetune small@step10 synth-nli seed{seed}"] for seed in (3, 4)]
    assert [cell.settings.train.seed for cell in replicates] == [3, 4]
    assert cells["crosseval small@step10+synth-nli"].after == [cell.name for cell in replicates]
    single = plan(SweepSettings(experiment="s", train_datasets="synth-nli"), "small", [("step-10", 10)], Path("r"))
    assert [c.name for c in single if c.name.startswith("finetune")] == ["finetune small@step10 synth-nli"]
