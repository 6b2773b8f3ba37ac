"""``finetune``: supervised or instruction tuning of one checkpoint on one training set, tracked and resumable.

The transformers ``Trainer`` does the training: completion-only loss (prompt tokens labelled -100, EOS
appended), AdamW, a linear schedule with 3% warmup, no weight decay, a fixed number of epochs; batches are
padded to their longest example and grouped by length. One MLflow run holds the settings, the training curve
(``train_loss``, ``lr``, ``tokens_per_second`` by step), the relative weight change from the base checkpoint
(``weight_change`` and ``weight_change/<layer>``) and the tuned model under the artifact path ``model``.

Trainer checkpoints go to ``AMURO_HOME/finetune/<run key>``: a killed run, started again with the same
settings, continues from its last checkpoint in the same MLflow run. ``load_tuned(run_id)`` gives back the
tuned model and tokenizer of a finished run.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import time
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from transformers import TrainerCallback

from amuro import tasks, tracking
from amuro.checkpoints import Checkpoint, amuro_home, open_series
from amuro.config import FinetuneConfig
from amuro.errors import UserError, unknown
from amuro.search import SearchSpace, TrialRuns, run_search
from amuro.sft_data import PadToLongest, training_features
from amuro.tasks.specfile import load_spec_option

MODEL_ARTIFACT = "model"
WARMUP_RATIO = 0.03
SEARCH_VALIDATION_EXAMPLES = 200


# --- data -------------------------------------------------------------------------------------------------

def training_spec(cfg: FinetuneConfig) -> tasks.DatasetSpec:
    """The training set, checked against the kind of tuning asked for."""
    load_spec_option(cfg.dataset_spec)
    spec = tasks.get(cfg.dataset)
    trainable = [s.name for s in tasks.CATALOGUE.values() if s.trainable]
    if not spec.trainable or "train" not in spec.splits:
        raise unknown("training set (this one is for evaluation only)", cfg.dataset, trainable)
    if cfg.tuning == "it" and spec.kind != "chat":
        raise UserError(f"instruction tuning needs a chat dataset, and {spec.name} is a {spec.task} set: "
                        "use --dataset synth-instruct (offline) or tulu_v2, or --tuning sft")
    if cfg.tuning == "sft" and spec.kind == "chat":
        raise UserError(f"{spec.name} is a chat mixture: use --tuning it for it, or an sft set such as synth-nli")
    return spec


def training_examples(spec: tasks.DatasetSpec, cfg: FinetuneConfig) -> list[tasks.Example]:
    """The training split, cut to ``max_train_examples`` by a subsample seeded with the run's seed."""
    examples = tasks.load_examples(spec, "train")
    if cfg.max_train_examples and cfg.max_train_examples < len(examples):
        examples = random.Random(f"train/{cfg.seed}").sample(examples, cfg.max_train_examples)
    return examples


def search_split(spec: tasks.DatasetSpec, train: list[tasks.Example]) -> tuple[list, list]:
    """(training, validation) examples for the search: the validation split, else 10% held out of train."""
    if "validation" in spec.splits:
        return train, tasks.load_examples(spec, "validation", limit=SEARCH_VALIDATION_EXAMPLES)
    held = max(1, min(SEARCH_VALIDATION_EXAMPLES, len(train) // 10))
    if len(train) - held < 1:
        raise UserError(f"{spec.name} has no validation split and too few training examples to hold some out "
                        "for the search: raise --max-train-examples or use --trials 0")
    return train[held:], train[:held]


# --- training ---------------------------------------------------------------------------------------------

def _with_lora(model, cfg: FinetuneConfig):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


class MlflowCurve(TrainerCallback):
    """Logs the training curve to the active MLflow run (the Trainer's own reporting is off: report_to=none)."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.tokens_at_start = state.num_input_tokens_seen

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        mlflow.log_metrics({
            "train_loss": logs["loss"], "lr": logs.get("learning_rate", 0.0),
            "epoch": logs.get("epoch", state.epoch or 0.0),
            "tokens_per_second": (state.num_input_tokens_seen - self.tokens_at_start) / elapsed,
        }, step=state.global_step)


def _training_args(cfg: FinetuneConfig, output_dir: Path, lr: float, epochs: int, steps: int, *, save: bool):
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir), num_train_epochs=epochs, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum, learning_rate=lr,
        lr_scheduler_type="linear", warmup_steps=WARMUP_RATIO, weight_decay=0.0, optim="adamw_torch",
        train_sampling_strategy="group_by_length", logging_steps=max(1, min(10, steps // 20)),
        save_strategy="steps" if save else "no", save_steps=cfg.save_steps or max(1, -(-steps // 10)),
        save_total_limit=1, include_num_input_tokens_seen="non_padding", report_to="none", seed=cfg.seed,
        data_seed=cfg.seed, dataloader_num_workers=0, disable_tqdm=False, use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(), remove_unused_columns=False)


def total_steps(examples: int, cfg: FinetuneConfig, epochs: int) -> int:
    per_epoch = max(1, -(-examples // cfg.batch_size) // cfg.grad_accum)
    return per_epoch * epochs


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest Trainer checkpoint that was written to the end (its trainer_state.json is saved last)."""
    complete = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists()
                and p.name.split("-")[-1].isdigit()]
    return str(max(complete, key=lambda p: int(p.name.split("-")[-1]))) if complete else None


def train_model(ckpt: Checkpoint, cfg: FinetuneConfig, features: list[dict], *, lr: float, epochs: int,
                output_dir: Path, resume: bool, eval_features: list[dict] | None = None):
    """Train one model with the Trainer; returns (merged model, tokenizer, validation loss or None)."""
    from transformers import Trainer, set_seed
    from transformers.trainer_callback import ProgressCallback

    from amuro.pretrain import _quiet_progress

    set_seed(cfg.seed)
    model, tokenizer = ckpt.load()
    if cfg.lora:
        model = _with_lora(model, cfg)
    steps = total_steps(len(features), cfg, epochs)
    save = eval_features is None
    args = _training_args(cfg, output_dir, lr, epochs, steps, save=save)
    trainer = Trainer(model=model, args=args, train_dataset=features, eval_dataset=eval_features,
                      data_collator=PadToLongest(tokenizer.pad_token_id), processing_class=tokenizer,
                      callbacks=[MlflowCurve()])
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_quiet_progress())
    last = last_complete_checkpoint(output_dir) if resume else None
    if last:
        print(f"continuing from Trainer checkpoint {Path(last).name}")
    result = trainer.train(resume_from_checkpoint=last)
    mlflow.log_metrics({"train_runtime": result.metrics.get("train_runtime", 0.0),
                        "train_loss_mean": result.training_loss})
    val_loss = trainer.evaluate()["eval_loss"] if eval_features is not None else None
    model = trainer.model
    if cfg.lora:
        mlflow.log_dict(_lora_config(model), "lora/adapter_config.json")
        model = model.merge_and_unload()
    model.eval()
    return model, tokenizer, val_loss


def _lora_config(model) -> dict:
    config = model.peft_config["default"].to_dict()
    return json.loads(json.dumps(config, default=lambda value: sorted(value) if isinstance(value, set) else str(value)))


# --- what the run records ---------------------------------------------------------------------------------

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
    return {("weight_change" if key == "total" else f"weight_change/{key}"): (d / n) ** 0.5 if n else 0.0
            for key, (d, n) in sums.items()}


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "transformers", "torch", "accelerate", "tokenizers",
                                                     "safetensors")]


def log_tuned_model(model, tokenizer) -> None:
    """The tuned weights and tokenizer under ``model`` (``runs:/<id>/model``), as an MLflow transformers model."""
    quiet = logging.getLogger("mlflow.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)   # no model card or license lookups to warn about for local weights
    try:
        mlflow.transformers.log_model(transformers_model={"model": model, "tokenizer": tokenizer},
                                      name=MODEL_ARTIFACT, task="text-generation",
                                      pip_requirements=_pip_requirements())
    finally:
        quiet.setLevel(level)


def load_tuned(run_id: str, *, dtype=None):
    """(model, tokenizer) of a finetune run, from ``runs:/<run_id>/model``, downloaded once into AMURO_HOME.

    ``log_model`` writes the weights to ``model/model`` and the tokenizer to ``model/components/tokenizer``;
    ``mlflow.transformers.load_model(f"runs:/{run_id}/model")`` loads the same files as a pipeline.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = amuro_home() / "tuned" / run_id
    if not (target / MODEL_ARTIFACT / "model" / "config.json").exists():
        partial = target.with_name(f"{run_id}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{run_id}/{MODEL_ARTIFACT}", dst_path=str(partial))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"run {run_id} has no tuned model to download ({first[:200]}): give a finished "
                            "finetune run id") from None
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    folder = target / MODEL_ARTIFACT
    tokenizer = AutoTokenizer.from_pretrained(folder / "components" / "tokenizer")
    model = AutoModelForCausalLM.from_pretrained(folder / "model", dtype=dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def _log_params_once(params: dict[str, object]) -> None:
    """Params cannot change once logged; a resumed run logs only the ones it does not have yet."""
    run = mlflow.active_run()
    have = MlflowClient().get_run(run.info.run_id).data.params
    missing = {name: value for name, value in params.items() if name not in have}
    if missing:
        mlflow.log_params({name: tracking.tag_value(value) for name, value in missing.items()})


def _packing(cfg: FinetuneConfig) -> dict[str, int]:
    return {"train_shots": cfg.train_shots, "seed": cfg.seed}


# --- the entry point --------------------------------------------------------------------------------------

def _search(cfg, ckpt, spec, examples, experiment_id, run_id, key, tags, name, workdir) -> tuple[float, int]:
    trial_train, validation = search_split(spec, examples)
    tokenizer = ckpt.load()[1]
    train_features = training_features(spec, trial_train, tokenizer, cfg.max_length, **_packing(cfg))
    val_features = training_features(spec, validation, tokenizer, cfg.max_length, **_packing(cfg))

    def train_and_score(params: dict) -> float:
        return train_model(ckpt, cfg, train_features, lr=params["lr"], epochs=params["epochs"],
                           output_dir=workdir / "trial", resume=False, eval_features=val_features)[2]

    hook = TrialRuns(experiment_id, run_id, key, tags, name)
    space = SearchSpace(lr=cfg.lr, epochs=cfg.epochs)
    best = run_search(cfg.trials, space, hook.wrap(space, train_and_score), cfg.seed)
    shutil.rmtree(workdir / "trial", ignore_errors=True)
    _log_params_once({"best_lr": best["lr"], "best_epochs": best["epochs"]})
    print(f"search: best lr {best['lr']:.3g}, epochs {best['epochs']} after {cfg.trials} trials")
    return best["lr"], best["epochs"]


def _train_and_log(cfg, ckpt, spec, experiment_id, cell, key, tags, name) -> None:
    workdir = amuro_home() / "finetune" / key
    if not cell.resumed:
        shutil.rmtree(workdir, ignore_errors=True)   # stale checkpoints of a run that no longer exists
    examples = training_examples(spec, cfg)
    _log_params_once({**cfg.params(), "train_examples": len(examples), "base_location": ckpt.location,
                      "warmup_ratio": WARMUP_RATIO, "weight_decay": 0.0, "optimizer": "adamw_torch",
                      "lr_schedule": "linear", "training_format": "default" if spec.kind != "chat" else "chat"})
    lr, epochs = cfg.lr, cfg.epochs
    if cfg.trials:
        lr, epochs = _search(cfg, ckpt, spec, examples, experiment_id, cell.run_id, key, tags, name, workdir)
    tokenizer = ckpt.load()[1]
    features = training_features(spec, examples, tokenizer, cfg.max_length, **_packing(cfg))
    _log_params_once({"train_tokens": sum(len(f["input_ids"]) for f in features), "final_lr": lr,
                      "final_epochs": epochs})
    model, tokenizer, _ = train_model(ckpt, cfg, features, lr=lr, epochs=epochs, output_dir=workdir / "trainer",
                                      resume=cell.resumed)
    base, _ = ckpt.load()
    mlflow.log_metrics(weight_change(base, model))
    del base
    log_tuned_model(model, tokenizer)
    shutil.rmtree(workdir, ignore_errors=True)


def finetune(cfg: FinetuneConfig) -> str:
    """Fine-tune (or reuse a finished run with the same settings), then score in-domain; returns the run id."""
    launcher = tracking.drop_launcher()
    experiment_id = tracking.connect(cfg.experiment)
    spec = training_spec(cfg)
    series = open_series(cfg.model, experiment_id=experiment_id)
    ckpt = series.get(cfg.checkpoint) if cfg.checkpoint else series.last
    settings = {**cfg.key_settings(), "model": series.name, "checkpoint": ckpt.revision}
    if cfg.dataset_spec:
        settings["dataset_spec"] = repr(spec)   # a spec file's dataset is identified by its content
    key = tracking.run_key("finetune", settings)
    tags = tracking.contract_tags(
        kind="finetune", model=series.name, revision=ckpt.revision, step=ckpt.step, tokens=ckpt.tokens,
        tuning=cfg.tuning_tag, train_dataset=spec.name, seed=cfg.seed, source_run_id=ckpt.source_run_id)
    name = f"finetune {ckpt.label} {spec.name}"
    with tracking.tracked_run(experiment_id, key, tags, name, resumable=True) as cell:
        if not cell.reused:
            _train_and_log(cfg, ckpt, spec, experiment_id, cell, key, tags, name)
            print(f"{name}: tuned model logged as runs:/{cell.run_id}/{MODEL_ARTIFACT}")
    if cfg.evaluate:
        from amuro.finetune_eval import evaluate_in_domain

        evaluate_in_domain(experiment_id, cell.run_id, ckpt, spec, cfg)
    tracking.note_launcher(launcher, cell.run_id, "finetune")
    return cell.run_id
