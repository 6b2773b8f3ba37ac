"""The transformers ``Trainer`` setup shared by fine-tuning and its hyper-parameter trials.

Completion-only loss (prompt tokens labelled -100, EOS appended), AdamW, a linear schedule with 3% warmup,
no weight decay, a fixed number of epochs; batches padded to their longest example and grouped by length.
The curve (``train_loss``, ``lr``, ``tokens_per_second`` by step) goes to the active MLflow run.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from amuro.core.precision import FP32, check_training_dtype
from amuro.core.protocol import protocol
from amuro.core.settings import FinetuneSettings
from amuro.core.train_settings import TrainSettings
from amuro.models.precision import tf32_available, torch_dtype
from amuro.models.series import Checkpoint
from amuro.training.features import IGNORE, padding_collator
from amuro.training.memory_plan import check_fits

WARMUP_RATIO = 0.03
# Result version of the Trainer setup (optimizer, schedule, loss, LoRA): bump it when a change alters the
# weights a fine-tune ends with; every fine-tune is then trained again.
RESULT_VERSION = 1
KEPT_CHECKPOINTS = 2  # the newest complete one and the one being written


def optimizer_name() -> str:
    """AdamW, fused into one kernel per parameter group on CUDA."""
    import torch

    return "adamw_torch_fused" if torch.cuda.is_available() else "adamw_torch"


class QuietProgress(ProgressCallback):
    """The usual progress bar, without printing every log line under it."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


def lora_config(train: TrainSettings):
    from peft import LoraConfig

    return LoraConfig(
        r=train.lora_r,
        lora_alpha=train.lora_alpha,
        lora_dropout=train.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def with_lora(model, train: TrainSettings):
    from peft import get_peft_model

    return get_peft_model(model, lora_config(train))


class MlflowCurve(TrainerCallback):
    """Logs the training curve to the MLflow run ``run_id`` (the Trainer's own reporting is off: report_to=none);
    of several training processes, only the main one logs.

    A run resumed from a checkpoint logs only the steps it has not logged yet, so no step appears twice.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.tokens_at_start = state.num_input_tokens_seen
        history = MlflowClient().get_metric_history(self.run_id, "train_loss") if state.is_world_process_zero else []
        self.logged_up_to = max((m.step for m in history), default=-1)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs or state.global_step <= self.logged_up_to:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        values = {
            "train_loss": logs["loss"],
            "lr": logs.get("learning_rate", 0.0),
            "epoch": logs.get("epoch", state.epoch or 0.0),
            "tokens_per_second": (state.num_input_tokens_seen - self.tokens_at_start) / elapsed,
        }
        now = int(time.time() * 1000)  # one request per point: the fluent call would also fetch the run each time
        metrics = [Metric(name, float(value), now, state.global_step) for name, value in values.items()]
        MlflowClient().log_batch(self.run_id, metrics=metrics)


def per_example_loss(outputs, labels, num_items_in_batch=None):
    """Each example's mean token loss, averaged over the batch: every example weighs the same, whatever its
    length (the study's ``outputs.loss`` with one example per micro-batch). The Trainer divides it by the
    accumulation steps (``loss_is_scaled_for_ga = False``)."""
    import torch

    logits = outputs.logits[..., :-1, :].float()
    targets = labels[..., 1:].to(logits.device)
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
    learned = (targets != IGNORE).float()
    return ((losses * learned).sum(-1) / learned.sum(-1).clamp(min=1)).mean()


def training_arguments(
    train: TrainSettings, output_dir: Path, lr: float, epochs: int, steps: int, *, save: bool, config=None, **overrides
):
    """The ``TrainingArguments`` (or ``config``, a subclass such as TRL's ``DPOConfig``), with ``overrides``: for
    one of several data-parallel processes, its share of the batch, FSDP or DeepSpeed (``amuro.training.launch``)."""
    import torch
    from transformers import TrainingArguments

    values = dict(
        output_dir=str(output_dir),
        num_train_epochs=epochs,
        per_device_train_batch_size=overrides.pop("per_device_train_batch_size", train.batch_size),
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=overrides.pop("gradient_accumulation_steps", train.grad_accum),
        learning_rate=lr,
        lr_scheduler_type="linear",
        warmup_steps=WARMUP_RATIO,
        weight_decay=0.0,
        optim=optimizer_name(),
        train_sampling_strategy="random" if train.batch_size == 1 else "group_by_length",
        logging_steps=max(1, min(10, steps // 20)),
        save_strategy="steps" if save else "no",
        save_steps=train.save_steps or max(1, -(-steps // 10)),
        save_total_limit=KEPT_CHECKPOINTS,
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        seed=train.seed,
        data_seed=train.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
        use_cpu=not torch.cuda.is_available(),
        bf16=train.precision == "bfloat16",
        fp16=train.precision == "float16",
        tf32=True if tf32_available() else None,
        activation_checkpointing=train.gradient_checkpointing,
        remove_unused_columns=False,
    )
    return (config or TrainingArguments)(**{**values, **overrides})


def total_steps(examples: int, train: TrainSettings, epochs: int) -> int:
    per_epoch = max(1, -(-examples // train.batch_size) // train.grad_accum)
    return per_epoch * epochs


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest Trainer checkpoint that was written to the end (its trainer_state.json is saved last)."""
    complete = [
        p
        for p in folder.glob("checkpoint-*")
        if (p / "trainer_state.json").exists() and p.name.split("-")[-1].isdigit()
    ]
    return str(max(complete, key=lambda p: int(p.name.split("-")[-1]))) if complete else None


def run_trainer(trainer, output_dir: Path, resume: bool, run_id: str | None = None) -> None:
    """Train (from the last complete checkpoint when resuming) with a quiet progress bar; the main process logs
    the runtime and mean loss to the run."""
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(QuietProgress)
    last = last_complete_checkpoint(output_dir) if resume else None
    if last:
        print(f"continuing from Trainer checkpoint {Path(last).name}")
    result = trainer.train(resume_from_checkpoint=last)
    if trainer.is_world_process_zero():
        metrics = {"train_runtime": result.metrics.get("train_runtime", 0.0), "train_loss_mean": result.training_loss}
        mlflow.log_metrics(metrics, run_id=run_id)


def train_model(
    ckpt: Checkpoint,
    cfg: FinetuneSettings,
    features: list[dict],
    *,
    lr: float,
    epochs: int,
    output_dir: Path,
    resume: bool,
    eval_features: list[dict] | None = None,
    callbacks=(),
    run_id: str | None = None,
    parallel: dict | None = None,
    save_to: Path | None = None,
):
    """Train one model with the Trainer; returns (merged model, tokenizer, validation loss or None).

    The curve goes to the run ``run_id`` (the active run by default). One of several launched processes
    (``amuro.training.launch``) is given its ``parallel`` Trainer arguments and saves the final model to
    ``save_to``; only the main process logs.
    """
    from transformers import Trainer, set_seed

    set_seed(cfg.train.seed)
    check_training_dtype(cfg.train.precision)
    model, tokenizer = ckpt.load(dtype=torch_dtype(FP32))  # fp32 master weights, whatever the checkpoint holds
    if cfg.train.lora:
        model = with_lora(model, cfg.train)
    check_fits(model, cfg.train, max((len(f["input_ids"]) for f in features), default=1))
    steps = total_steps(len(features), cfg.train, epochs)
    save = eval_features is None
    args = training_arguments(cfg.train, output_dir, lr, epochs, steps, save=save, **(parallel or {}))
    run_id = run_id or mlflow.active_run().info.run_id
    by_example = protocol(cfg.protocol).loss_weighting == "example"
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=features,
        eval_dataset=eval_features,
        data_collator=padding_collator(tokenizer),
        processing_class=tokenizer,
        callbacks=[MlflowCurve(run_id), *callbacks],
        compute_loss_func=per_example_loss if by_example else None,
    )
    if by_example:
        trainer.loss_is_scaled_for_ga = False
    run_trainer(trainer, output_dir, resume, run_id)
    main = trainer.is_world_process_zero()
    val_loss = trainer.evaluate()["eval_loss"] if eval_features is not None else None
    model = trainer.model
    if cfg.train.lora:
        if main:
            mlflow.log_dict(adapter_config(model), "lora/adapter_config.json", run_id=run_id)
        model = model.merge_and_unload()
    model.eval()
    if save_to is not None:
        if not cfg.train.lora:
            trainer.save_model(str(save_to))  # every process takes part: FSDP and ZeRO-3 gather the weights
        elif main:
            model.save_pretrained(save_to)
    return model, tokenizer, val_loss


def adapter_config(model) -> dict:
    config = model.peft_config["default"].to_dict()
    return json.loads(json.dumps(config, default=lambda value: sorted(value) if isinstance(value, set) else str(value)))


_LAYER = re.compile(r"\.layers\.(\d+)\.")


def weight_change(base, tuned) -> dict[str, float]:
    """Relative L2 distance ||tuned - base|| / ||base||, over all weights and per transformer layer."""
    import torch

    base_params = dict(base.named_parameters())
    sums: dict[str, list[float]] = {}
    with torch.no_grad():
        for name, weight in tuned.named_parameters():
            reference = base_params[name].to(weight.device, torch.float32)
            match = _LAYER.search(name)
            group = f"layer_{int(match[1]):02d}" if match else ("embeddings" if "embed" in name else "other")
            diff = float((weight.float() - reference).pow(2).sum())
            norm = float(reference.pow(2).sum())
            for key in ("total", group):
                acc = sums.setdefault(key, [0.0, 0.0])
                acc[0] += diff
                acc[1] += norm
    return {
        ("weight_change" if key == "total" else f"weight_change/{key}"): (d / n) ** 0.5 if n else 0.0
        for key, (d, n) in sums.items()
    }
