"""--dtype: what auto resolves to, the run key and params, bf16 training with fp32 master weights, bf16 scoring."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mlflow
import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from safetensors import safe_open

from amuro.cli import main
from amuro.commands.finetune import finetune
from amuro.commands.pretrain_eval import pretrain_eval
from amuro.core import precision
from amuro.core.settings import EvalSettings, FinetuneSettings, PretrainEvalSettings
from amuro.core.train_settings import TrainSettings
from amuro.training import checkpoint_artifacts

TINY_TRAIN = dict(max_train_examples=16, epochs=1, batch_size=4, train_shots=0)


@pytest.fixture
def a_bf16_gpu(monkeypatch):
    """What the settings see on a machine with a bf16 GPU (only the resolution: nothing runs on it)."""
    monkeypatch.setattr(precision, "cuda_bf16", lambda: (True, True))


def test_auto_is_fp32_on_cpu_and_keeps_the_keys_runs_always_had():
    assert TrainSettings().precision == "float32" and "dtype" not in TrainSettings().key_settings()
    assert "dtype" not in EvalSettings().cell_key_settings("classification")
    assert EvalSettings().params()["dtype"] == "float32"
    assert TrainSettings(dtype="bfloat16").key_settings()["dtype"] == "bfloat16"


def test_auto_on_a_bf16_gpu_is_bf16_and_the_studys_own_dtypes_under_study(a_bf16_gpu):
    assert TrainSettings().precision == "bfloat16" and TrainSettings().key_settings()["dtype"] == "bfloat16"
    assert FinetuneSettings(protocol="study").train.precision == "bfloat16"  # accelerate --mixed_precision bf16
    assert EvalSettings().key_settings()["dtype"] == "bfloat16"
    assert EvalSettings(protocol="study").key_settings()["dtype"] == "stored"  # torch_dtype="auto"
    assert EvalSettings(dtype="float32").params()["dtype"] == "float32"


def test_float16_training_without_a_gpu_is_one_line(tracking_uri, small_series):
    result = CliRunner().invoke(
        main, ["finetune", "--experiment", "fp16", "--model", small_series, "--dtype", "float16", "--eval", "false"]
    )
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code != 0 and len(errors) == 1 and "needs a CUDA GPU" in errors[0], result.output


def test_bf16_checkpointed_fine_tune_keeps_two_checkpoints_and_stores_a_bf16_model(
    tracking_uri, small_series, monkeypatch
):
    """One bf16 fine-tune with gradient checkpointing and a checkpoint every step: fp32 master weights, at most
    two checkpoints on disk and in the store, every upload done by the end, the tuned model stored in bf16, the
    dtype in the run key and params."""
    on_disk, masters, checkpointing = [], [], []
    save = checkpoint_artifacts.UploadCheckpoints.on_save

    def counting(self, args, state, control, model=None, **kwargs):
        on_disk.append(len(list(Path(args.output_dir).glob("checkpoint-*"))))
        masters.append({p.dtype for p in model.parameters()})
        checkpointing.append(model.is_activation_checkpointing)
        return save(self, args, state, control, model=model, **kwargs)

    monkeypatch.setattr(checkpoint_artifacts.UploadCheckpoints, "on_save", counting)
    train = TrainSettings(
        dtype="bfloat16", gradient_checkpointing=True, save_steps=1, checkpoint_artifacts=True, **TINY_TRAIN
    )
    cfg = FinetuneSettings(experiment="bf16", model=small_series, evaluate=False, train=train)
    run_id = finetune(cfg)

    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.data.params["dtype"] == "bfloat16" and run.data.params["optimizer"] == "adamw_torch"
    fp32_key = finetune_key(dataclasses.replace(cfg, train=dataclasses.replace(train, dtype="float32")))
    assert run.data.tags["amuro.run_key"] != fp32_key
    assert int(run.data.tags["amuro.checkpoint_step"]) == 4 and len(on_disk) == 4 and max(on_disk) == 2
    assert all(dtypes == {torch.float32} for dtypes in masters) and all(checkpointing)
    stored = {item.path for item in client.list_artifacts(run_id, "checkpoints")}
    assert stored == {"checkpoints/a", "checkpoints/b", "checkpoints/latest.json"}
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/checkpoints/latest.json")["step"] == 4
    weights = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model/model"))
    with safe_open(str(weights / "model.safetensors"), "pt") as tensors:
        assert {str(tensors.get_slice(name).get_dtype()) for name in tensors.keys()} == {"BF16"}


def finetune_key(cfg: FinetuneSettings) -> str:
    from amuro.core import tracking
    from amuro.models.series import local_series

    series = local_series(cfg.model)
    return tracking.run_key(
        "finetune", {**cfg.key_settings(), "model": series.name, "checkpoint": series.last.revision}
    )


def test_bf16_scoring_is_recorded_and_keyed_apart(tracking_uri, small_series):
    quick = dict(max_examples=4, shots=1, bootstrap=50)
    for dtype in ("float32", "bfloat16"):
        pretrain_eval(
            PretrainEvalSettings(
                experiment="dt",
                model=small_series,
                checkpoints="1",
                datasets="synth-nli",
                eval=EvalSettings(dtype=dtype, **quick),
            )
        )
    experiment = mlflow.get_experiment_by_name("dt").experiment_id
    cells = MlflowClient().search_runs([experiment], "tags.`amuro.kind` = 'eval'")
    assert sorted(run.data.params["dtype"] for run in cells) == ["bfloat16", "float32"]
    assert len({run.data.tags["amuro.run_key"] for run in cells}) == 2
    assert not [name for run in cells for name in run.data.metrics if name.startswith("system/")]  # under a minute
