"""Dataset lineage: eval and finetune runs record the rows they used; runs that scored other rows are not paired."""

import os
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from amuro.commands.crosseval import crosseval
from amuro.commands.finetune import finetune, training_examples, training_spec
from amuro.commands.pretrain_eval import pretrain_eval
from amuro.core import tracking
from amuro.core.settings import CrossevalSettings, EvalSettings, FinetuneSettings, PretrainEvalSettings
from amuro.core.train_settings import TrainSettings
from amuro.data import get, load_examples
from amuro.data.lineage import rows_digest
from amuro.models.series import local_series
from amuro.scoring.cell_items import item_rows

ROOT = Path(__file__).resolve().parents[1]


def _inputs(run_id: str) -> dict[str, tuple[str, str, str]]:
    """context -> (dataset name, digest, source type) of a run's logged inputs."""
    inputs = MlflowClient().get_run(run_id).inputs.dataset_inputs
    by_context = {}
    for item in inputs:
        tags = {tag.key: tag.value for tag in item.tags}
        by_context[tags["mlflow.data.context"]] = (item.dataset.name, item.dataset.digest, item.dataset.source_type)
    return by_context


def _eval_runs(experiment_id: str, query: str = "") -> list:
    return MlflowClient().search_runs(
        [experiment_id], " and ".join(filter(None, ["tags.`amuro.kind` = 'eval'", query])), max_results=100
    )


def test_runs_record_their_rows_and_pairs_of_other_rows_are_refused(tracking_uri, small_series):
    revision = local_series(small_series).checkpoints[1].revision
    cfg = FinetuneSettings(
        experiment="lin",
        model=small_series,
        checkpoint=revision,
        dataset="synth-nli",
        train=TrainSettings(epochs=1, max_train_examples=24, batch_size=8),
        evaluate=False,
    )
    tuned_run = finetune(cfg)
    train = training_examples(training_spec(cfg), cfg)
    assert _inputs(tuned_run) == {"train": ("synth-nli", rows_digest(train), "local")}

    quick = dict(shots=2, bootstrap=100)
    crosseval(
        CrossevalSettings(
            experiment="lin",
            runs=tuned_run,
            datasets="synth-nli",
            formats="default",
            eval=EvalSettings(max_examples=6, **quick),
        )
    )
    pretrain_eval(
        PretrainEvalSettings(
            experiment="lin",
            model=small_series,
            checkpoints=revision,
            datasets="synth-nli",
            eval=EvalSettings(max_examples=8, **quick),
        )
    )
    experiment_id = tracking.connect("lin")
    (tuned_eval,) = _eval_runs(experiment_id, "tags.`amuro.tuning` = 'sft'")
    (base_eval,) = _eval_runs(experiment_id, "tags.`amuro.tuning` = 'none'")
    test_rows = load_examples(get("synth-nli"), "test")
    tuned_inputs, base_inputs = _inputs(tuned_eval.info.run_id), _inputs(base_eval.info.run_id)
    for inputs, count in ((tuned_inputs, 6), (base_inputs, 8)):
        rows = item_rows(len(test_rows), EvalSettings(max_examples=count, **quick), "synth-nli")
        assert inputs["eval"] == ("synth-nli", rows_digest([test_rows[r] for r in rows]), "local")
    assert tuned_inputs["demonstrations"] == base_inputs["demonstrations"]  # same eval seed, same demos
    assert tuned_inputs["demonstrations"][0] == "synth-nli"

    selected = _eval_runs(experiment_id, f"dataset.name = 'synth-nli' and dataset.digest = '{tuned_inputs['eval'][1]}'")
    assert [r.info.run_id for r in selected] == [tuned_eval.info.run_id]

    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "analysis", "gains", "--experiment", "lin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    refusals = [line for line in result.stderr.splitlines() if "scored different rows" in line]
    assert len(refusals) == 1, result.stderr
    assert tuned_eval.info.run_id in refusals[0] and base_eval.info.run_id in refusals[0]
    assert "Traceback" not in result.stderr


def test_hub_rows_are_recorded_with_hub_id_config_split_and_revision(tracking_uri):
    import json

    import mlflow

    from amuro.data import DatasetSpec
    from amuro.data.lineage import log_rows

    spec = DatasetSpec(
        name="glue-rte",
        task="nli",
        source="hub",
        path="nyu-mll/glue",
        config="rte",
        revision="bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c",
        splits={"test": "validation"},
        labels=("yes", "no"),
    )
    rows = load_examples(get("synth-nli"), "test")[:3]
    with mlflow.start_run(experiment_id=tracking.connect("hub")) as run:
        digest = log_rows(spec, "validation", rows, "eval")
    (item,) = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert (item.dataset.name, item.dataset.digest, item.dataset.source_type) == ("glue-rte", digest, "hugging_face")
    source = json.loads(item.dataset.source)
    assert (source["path"], source["config_name"], source["split"], source["revision"]) == (
        "nyu-mll/glue",
        "rte",
        "validation",
        spec.revision,
    )
    assert json.loads(item.dataset.profile)["num_rows"] == 3 and digest == rows_digest(rows)


def test_runs_logging_the_same_new_dataset_at_once_all_record_it(mlflow_server):
    """The store looks a dataset up before inserting it: runs logging a new one at the same moment collide on
    the server, and every run records it all the same."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import mlflow

    from amuro.data.lineage import log_row_sets

    mlflow.set_tracking_uri(mlflow_server)
    experiment_id = mlflow.set_experiment("lineage-at-once").experiment_id
    spec = get("synth-nli")
    rows = load_examples(spec, "test")
    writers, rounds = 3, 12
    barrier = threading.Barrier(writers)

    def log(index: int) -> tuple[str, str]:
        run_id = MlflowClient().create_run(experiment_id).info.run_id
        with mlflow.start_run(run_id=run_id):
            barrier.wait(timeout=60)
            digest = log_row_sets(spec, [("test", rows[index // writers : index // writers + 3], "eval")])[0]
        return run_id, digest

    try:
        with ThreadPoolExecutor(writers) as pool:
            logged = list(pool.map(log, range(writers * rounds)))
        for run_id, digest in logged:
            assert _inputs(run_id)["eval"][:2] == ("synth-nli", digest)
        assert len({digest for _, digest in logged}) == rounds
    finally:
        mlflow.set_tracking_uri(None)
