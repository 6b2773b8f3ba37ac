"""Preference tuning (``--tuning dpo``) with TRL's ``DPOTrainer`` on a preference set's pairs.

TRL gets the pairs in its standard preference format: the prompt as amuro scores it (the ``default`` format,
or the chat layout for conversations) and the two answers as they continue it; it appends EOS and learns only
the answers. What amuro's supervised training fixes is shared: the optimizer, schedule, batch, precision and
checkpointing (``training_arguments``, as ``DPOConfig``'s base), LoRA's configuration (TRL wraps the model, and
the reference is the model with its adapters off), the Trainer checkpoints a killed run resumes from, and the
curve: ``train_loss``, ``lr`` and ``tokens_per_second`` as for any finetune run, and TRL's own metrics
(``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``, ``rewards/accuracies``, ``logps/*``) by step.
Without LoRA the reference model is the base checkpoint, loaded once more and never trained.
"""

from __future__ import annotations

from pathlib import Path

import mlflow

from amuro.core.settings import FinetuneSettings
from amuro.data import DatasetSpec, Example, render
from amuro.data.formats import continuation
from amuro.data.preferences import chosen_and_rejected
from amuro.models.series import Checkpoint
from amuro.training.trainer import (
    MlflowCurve,
    adapter_config,
    lora_config,
    run_trainer,
    total_steps,
    training_arguments,
)

TRAINING_FORMAT = "default"
CURVE_PREFIXES = ("rewards/", "logps/")


def preference_rows(spec: DatasetSpec, examples: list[Example]) -> list[dict[str, str]]:
    """TRL's standard preference rows: the prompt, and each answer as the text that follows it."""
    rows = []
    for example in examples:
        prompt = render(spec, example, TRAINING_FORMAT)
        chosen, rejected = chosen_and_rejected(example)
        rows.append(
            {"prompt": prompt, "chosen": continuation(prompt, chosen), "rejected": continuation(prompt, rejected)}
        )
    return rows


class PreferenceCurve(MlflowCurve):
    """The finetune curve, and TRL's reward and log-probability metrics at the same steps."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        super().on_log(args, state, control, logs=logs, **kwargs)
        if not logs or "loss" not in logs or state.global_step <= self.logged_up_to:
            return
        mlflow.log_metrics(
            {name: float(value) for name, value in logs.items() if name.startswith(CURVE_PREFIXES)},
            step=state.global_step,
        )


def train_preference(
    ckpt: Checkpoint,
    cfg: FinetuneSettings,
    rows: list[dict[str, str]],
    *,
    lr: float,
    epochs: int,
    output_dir: Path,
    resume: bool,
    callbacks=(),
):
    """DPO on ``rows`` from the checkpoint; returns (tuned model with LoRA merged, tokenizer)."""
    import datasets
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    train = cfg.train
    set_seed(train.seed)
    model, tokenizer = ckpt.load()
    reference = None if train.lora else ckpt.load()[0]
    args = training_arguments(
        train,
        output_dir,
        lr,
        epochs,
        total_steps(len(rows), train, epochs),
        save=True,
        config=DPOConfig,
        beta=train.dpo_beta,
        loss_type=[train.dpo_loss],
        max_length=train.max_length,
        train_sampling_strategy="random",  # a pair has no single length to group by
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=reference,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[PreferenceCurve(mlflow.active_run().info.run_id), *callbacks],
        peft_config=lora_config(train) if train.lora else None,
    )
    run_trainer(trainer, output_dir, resume)
    model = trainer.model
    if train.lora:
        mlflow.log_dict(adapter_config(model), "lora/adapter_config.json")
        model = model.merge_and_unload()
    model.eval()
    return model, tokenizer
