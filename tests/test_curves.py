"""The study in MLflow's charts: parent runs log score by pre-training step; run names and experiment kind."""

from mlflow.tracking import MlflowClient

from amuro.commands.pretrain_eval import pretrain_eval
from amuro.core import tracking
from amuro.core.settings import EvalSettings, PretrainEvalSettings
from amuro.models.series import local_series
from amuro.scoring.curves import curve_key


def test_pretrain_eval_parent_logs_one_point_per_checkpoint_at_its_step(tracking_uri, small_series):
    cfg = PretrainEvalSettings(
        experiment="curves",
        model=small_series,
        checkpoints="all",
        datasets="synth-nli",
        formats="default,io",
        eval=EvalSettings(max_examples=4, shots=1, bootstrap=50),
    )
    parent = pretrain_eval(cfg)
    client = MlflowClient()
    experiment_id = tracking.connect("curves")
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    evals = client.search_runs([experiment_id], "tags.`amuro.kind` = 'eval'", max_results=100)
    steps = sorted(c.step for c in local_series(small_series).checkpoints)
    assert len(steps) == 4 and len(evals) == 8
    for fmt in ("default", "io"):
        history = client.get_metric_history(parent, f"base/synth-nli/{fmt}")
        assert sorted(point.step for point in history) == steps
        scores = {
            int(r.data.tags["amuro.step"]): r.data.metrics["score"] for r in evals if r.data.tags["amuro.format"] == fmt
        }
        assert {point.step: point.value for point in history} == scores
    names = {r.info.run_name for r in evals}
    assert f"eval small@step{steps[0]} → synth-nli [io]" in names

    assert pretrain_eval(cfg) == parent  # run again: every cell reused, no point logged twice
    assert len(client.get_metric_history(parent, "base/synth-nli/default")) == 4


def test_curve_names_say_base_or_tuned_set_eval_set_and_format():
    tags = {"amuro.tuning": "none", "amuro.eval_dataset": "synth-nli", "amuro.format": "io"}
    assert curve_key(tags) == "base/synth-nli/io"
    tags.update({"amuro.tuning": "sft+lora", "amuro.train_dataset": "spec[x]", "amuro.eval_dataset": "cnn_dailymail"})
    assert curve_key(tags) == "tuned/spec_x_/cnn_dailymail/io"
