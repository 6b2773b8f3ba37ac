"""Fine-tuning in several data-parallel processes (accelerate launch, gloo on CPU): the same training as one
process with the same global batch, one run, one model; FSDP and DeepSpeed ZeRO-3 alike; bad input in one line."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import mlflow
import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from amuro.cli import main
from amuro.commands.finetune import finetune
from amuro.commands.sweep import plan
from amuro.core.errors import UserError
from amuro.core.settings import FinetuneSettings, SweepSettings
from amuro.core.train_settings import TrainSettings
from amuro.models.tuned import load_tuned
from amuro.training.launch import SHIPPED_DS_CONFIGS, _run, launch_command

# Float tolerance: fp32 on CPU sums in another order over two processes; GPUs train in bf16.
TOLERANCE = 2e-2 if torch.cuda.is_available() else 1e-4
# 16 examples in micro-batches of 2, 2 accumulated: 4 optimizer steps, each logged.
GLOBAL_BATCH = dict(max_train_examples=16, epochs=1, batch_size=2, grad_accum=2, train_shots=0, max_length=128)


def _finetune(series: str, experiment: str, gpus: int = 1, **train) -> str:
    settings = FinetuneSettings(
        model=series, experiment=experiment, evaluate=False, gpus=gpus, train=TrainSettings(**GLOBAL_BATCH, **train)
    )
    return finetune(settings)


def _curve(run_id: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in MlflowClient().get_metric_history(run_id, "train_loss"))


def _artifacts(run_id: str, path: str | None = None) -> list[str]:
    found = []
    for item in MlflowClient().list_artifacts(run_id, path):
        found += _artifacts(run_id, item.path) if item.is_dir else [item.path]
    return sorted(found)


def _shape(run_id: str) -> tuple[set, set, list]:
    """Params, metrics and artifacts; system metrics are sampled by time, so a short run may have none."""
    data = MlflowClient().get_run(run_id).data
    return set(data.params), {m for m in data.metrics if not m.startswith("system/")}, _artifacts(run_id)


def _runs_in(experiment: str) -> list:
    return mlflow.search_runs([mlflow.get_experiment_by_name(experiment).experiment_id], output_format="list")


def _same_training(reference: str, run_id: str, experiment: str, rel: float = TOLERANCE) -> None:
    """One run with one model, logged like the one-process run, with its loss curve and weights."""
    assert [run.info.run_id for run in _runs_in(experiment)] == [run_id]  # the other process logged no run
    assert _shape(run_id) == _shape(reference)
    steps, losses = zip(*_curve(run_id))
    reference_steps, reference_losses = zip(*_curve(reference))
    assert steps == reference_steps == (1, 2, 3, 4)
    assert losses == pytest.approx(reference_losses, rel=rel)
    tuned, reference_model = load_tuned(run_id)[0], load_tuned(reference)[0]
    for (name, weight), reference_weight in zip(tuned.named_parameters(), reference_model.parameters()):
        torch.testing.assert_close(weight.float(), reference_weight.float(), rtol=rel * 10, atol=rel, msg=name)


@pytest.fixture(scope="module")
def one_process(small_series, tmp_path_factory):
    """The reference: the global batch of 4 as 2 micro-batches of 2 accumulated in this process."""
    store = tmp_path_factory.mktemp("data-parallel-store")
    uri = f"sqlite:///{store}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(store)
        mlflow.set_tracking_uri(uri)
        try:
            yield uri, _finetune(small_series, "one process")
        finally:
            mlflow.set_tracking_uri(None)


@pytest.fixture
def same_store(one_process, monkeypatch):
    uri, run_id = one_process
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield run_id
    mlflow.set_tracking_uri(None)


def test_two_processes_train_as_one_process_with_the_same_global_batch(small_series, same_store, capsys):
    two = _finetune(small_series, "two processes", gpus=2)
    assert "training in 2 data-parallel processes (accelerate launch)" in capsys.readouterr().out
    _same_training(same_store, two, "two processes")
    params = MlflowClient().get_run(two).data.params
    assert (params["gpus"], params["batch_size"], params["grad_accum"]) == ("2", "2", "2")  # the global batch


# accelerate shards (FSDP, DeepSpeed) only on GPUs: on CPU it would train the processes unsharded, which
# amuro refuses (test_bad_parallel_settings_are_one_line); what CPU can check is what reaches the Trainer.
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="accelerate shards a model only on 2 or more GPUs")
@pytest.mark.parametrize("sharding", [dict(fsdp=True), dict(deepspeed="zero3")], ids=["fsdp", "zero3"])
def test_sharded_fine_tunes_log_one_model_trained_as_one_process(small_series, same_store, sharding):
    run_id = _finetune(small_series, "sharded", gpus=2, **sharding)
    _same_training(same_store, run_id, "sharded")


def test_fsdp_and_zero3_reach_the_trainer_as_its_arguments(tmp_path):
    from transformers.integrations import unset_hf_deepspeed_config

    from amuro.training.launch import parallel_arguments
    from amuro.training.trainer import training_arguments

    def arguments(**sharding):
        cfg = FinetuneSettings(gpus=2, train=TrainSettings(**GLOBAL_BATCH, **sharding))
        return training_arguments(cfg.train, tmp_path, 1e-3, 1, 4, save=False, **parallel_arguments(cfg))

    fsdp = arguments(fsdp=True)
    assert (fsdp.per_device_train_batch_size, fsdp.gradient_accumulation_steps) == (2, 1)  # 2 x 1 x 2 processes
    plugin = fsdp.fsdp_plugin_args
    assert (plugin["fsdp_version"], plugin["auto_wrap_policy"], plugin["state_dict_type"]) == (
        2,
        "TRANSFORMER_BASED_WRAP",
        "FULL_STATE_DICT",  # the final model is gathered whole before it is saved
    )
    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("pip install 'amuro[deepspeed]'")
    try:
        zero3 = arguments(deepspeed="zero3").hf_deepspeed_config.config
    finally:
        unset_hf_deepspeed_config()  # a ZeRO-3 config stays global in transformers while it is set
    assert zero3["zero_optimization"]["stage"] == 3
    assert (zero3["train_micro_batch_size_per_gpu"], zero3["gradient_accumulation_steps"]) == (2, 1)


def test_the_shipped_zero3_config_is_the_study_one_and_the_launch_is_accelerate():
    config = json.loads(SHIPPED_DS_CONFIGS["zero3"].read_text())
    assert config["zero_optimization"]["stage"] == 3 and config["bf16"] == {"enabled": "auto"}
    assert config["train_micro_batch_size_per_gpu"] == config["gradient_accumulation_steps"] == "auto"
    command = launch_command(4, SHIPPED_DS_CONFIGS["zero3"], 29500)
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "4" and "--multi_gpu" in command
    assert "--multi_gpu" not in launch_command(1, SHIPPED_DS_CONFIGS["zero3"], 29500)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--gpus", "3", "--batch-size", "2", "--grad-accum", "2"], "the global batch of 4 (--batch-size 2 x"),
        (["--gpus", "2", "--fsdp", "--deepspeed", "zero3"], "--fsdp and --deepspeed both shard the model"),
        (["--gpus", "2", "--lora", "--fsdp"], "LoRA trains few weights and needs no sharding"),
        (["--deepspeed", "missing.json"], "--deepspeed missing.json: no such file"),
        (["--gpus", "2", "--fsdp"], "--fsdp needs GPUs (accelerate shards a model only on GPUs)"),
        (["--gpus", "0"], "gpus must be at least 1, got 0"),
    ],
)
def test_bad_parallel_settings_are_one_line(tracking_uri, small_series, arguments, message):
    result = CliRunner().invoke(main, ["finetune", "--experiment", "bad", "--model", small_series, *arguments])
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_the_gpu_count_stays_out_of_the_run_key_and_a_sweep_gives_its_finetune_cells_their_gpus():
    assert TrainSettings(batch_size=4, grad_accum=1).per_process(2) == (2, 1)  # smaller micro-batches
    assert TrainSettings(batch_size=1, grad_accum=8).per_process(4) == (1, 2)  # the study's 8 over 4 GPUs
    assert TrainSettings(batch_size=4, grad_accum=3).per_process(2) == (2, 3)
    on_one, on_four = (FinetuneSettings(gpus=n, train=TrainSettings(grad_accum=8, fsdp=n > 1)) for n in (1, 4))
    assert on_one.key_settings() == on_four.key_settings()
    cfg = SweepSettings(
        train_datasets="synth-nli", train=TrainSettings(grad_accum=4), gpus_per_cell="finetune=2,eval=1"
    )
    cells = [c.settings for c in plan(cfg, "tiny", [("step-10", 10)], Path("r.html")) if c.settings is not None]
    assert [s.gpus for s in cells if s.entry_point == "finetune"] == [2]
    single = plan(
        SweepSettings(train_datasets="synth-nli", train=TrainSettings(grad_accum=4)),
        "tiny",
        [("step-10", 10)],
        Path("r.html"),
    )
    assert [c.settings.gpus for c in single if c.settings is not None and c.settings.entry_point == "finetune"] == [1]


def test_failed_training_processes_fail_the_fine_tune_in_one_line():
    failed = r"^the 2 training processes failed \(exit code 3\): their error is printed above$"
    with pytest.raises(UserError, match=failed):
        _run([sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ), 2)
