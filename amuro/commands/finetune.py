"""``finetune``: supervised, instruction or preference tuning of one checkpoint on one set, tracked and resumable.

The transformers ``Trainer`` does the training: completion-only loss (prompt tokens labelled -100, EOS
appended), AdamW, a linear schedule with 3% warmup, no weight decay, a fixed number of epochs; batches are
padded to their longest example and grouped by length. One MLflow run holds the settings, the training curve
(``train_loss``, ``lr``, ``tokens_per_second`` by step), the relative weight change from the base checkpoint
(``weight_change`` and ``weight_change/<layer>``) and the tuned model under the artifact path ``model``.
Preference tuning (``--tuning dpo``) trains with TRL's ``DPOTrainer`` instead (``amuro.training.preference``),
into the same run, curve, checkpoints and ``model`` artifact.

Trainer checkpoints go to ``AMURO_HOME/finetune/<run key>``, or, with ``--checkpoint-artifacts``, to the
run's artifacts: a killed run, started again with the same settings (on any machine, with artifacts),
continues from its last checkpoint in the same MLflow run, logging no training step twice.
``load_tuned(run_id)`` gives back the tuned model and tokenizer of a finished run. With ``--gpus N``, ``--fsdp``
or ``--deepspeed``, the training runs in data-parallel processes that accelerate launches
(``amuro.training.launch``), and this process logs their one model.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from amuro import data
from amuro.commands.entry import open_entry
from amuro.core import tracking
from amuro.core.errors import UserError, unknown
from amuro.core.ownership import check_owner
from amuro.core.paths import amuro_home
from amuro.core.protocol import protocol
from amuro.core.settings import FinetuneSettings
from amuro.core.versions import version_tags
from amuro.data.lineage import log_rows, rows_digest
from amuro.data.preferences import PREFERENCE_TASK, preference_mismatch
from amuro.data.protocol import for_protocol, rendering_version
from amuro.data.provenance import is_commit
from amuro.models.precision import in_trained_dtype
from amuro.models.targets import checkpoint_target
from amuro.models.tuned import MODEL_ARTIFACT, log_tuned_model, open_registered_model, register_tuned
from amuro.training import features as feature_code
from amuro.training import trainer as trainer_code
from amuro.training.checkpoint_artifacts import UploadCheckpoints, restore_checkpoint
from amuro.training.features import training_features
from amuro.training.hyperparameter_search import SearchSpace, TrialRuns, run_search
from amuro.training.launch import check_launch, train
from amuro.training.trainer import WARMUP_RATIO, optimizer_name, weight_change

SEARCH_VALIDATION_EXAMPLES = 200


# --- data -------------------------------------------------------------------------------------------------


def training_spec(cfg: FinetuneSettings) -> data.DatasetSpec:
    """The training set (``--dataset-spec`` files registered), checked against the kind of tuning asked for."""
    spec = data.get(cfg.dataset)
    trainable = [s.name for s in data.CATALOGUE.values() if s.trainable]
    if not spec.trainable or "train" not in spec.splits:
        raise unknown("training set (this one is for evaluation only)", cfg.dataset, trainable)
    if (cfg.train.tuning == "dpo") != (spec.task == PREFERENCE_TASK):
        raise UserError(preference_mismatch(spec, cfg.train.tuning))
    if cfg.train.tuning == "it" and spec.kind != "chat":
        raise UserError(
            f"instruction tuning needs a chat dataset, and {spec.name} is a {spec.task} set: "
            "use --dataset synth-instruct (offline) or tulu_v2, or --tuning sft"
        )
    if cfg.train.tuning == "sft" and spec.kind == "chat":
        raise UserError(f"{spec.name} is a chat mixture: use --tuning it for it, or an sft set such as synth-nli")
    return for_protocol(spec, cfg.protocol)


def training_examples(spec: data.DatasetSpec, cfg: FinetuneSettings) -> list[data.Example]:
    """The training split, cut to ``max_train_examples`` by a subsample seeded with the run's seed."""
    examples = data.load_examples(spec, "train", protocol=cfg.protocol)
    if cfg.train.max_train_examples and cfg.train.max_train_examples < len(examples):
        examples = random.Random(f"train/{cfg.train.seed}").sample(examples, cfg.train.max_train_examples)
    return examples


def search_split(spec: data.DatasetSpec, train: list[data.Example]) -> tuple[list, list]:
    """(training, validation) examples for the search: the validation split, else 10% held out of train."""
    if "validation" in spec.splits:
        return train, data.load_examples(spec, "validation", limit=SEARCH_VALIDATION_EXAMPLES)
    held = max(1, min(SEARCH_VALIDATION_EXAMPLES, len(train) // 10))
    if len(train) - held < 1:
        raise UserError(
            f"{spec.name} has no validation split and too few training examples to hold some out "
            "for the search: raise --max-train-examples or use --trials 0"
        )
    return train[held:], train[:held]


def _log_params_once(params: dict[str, object]) -> None:
    """Params cannot change once logged; a resumed run logs only the ones it does not have yet."""
    run = mlflow.active_run()
    have = MlflowClient().get_run(run.info.run_id).data.params
    missing = {name: value for name, value in params.items() if name not in have}
    if missing:
        mlflow.log_params({name: tracking.tag_value(value) for name, value in missing.items()})


def _packing(cfg: FinetuneSettings) -> dict[str, object]:
    return {
        "train_shots": cfg.train.train_shots,
        "seed": cfg.train.seed,
        "tokenization": protocol(cfg.protocol).training_tokenization,
    }


# --- the entry point --------------------------------------------------------------------------------------


def _search(cfg, ckpt, spec, examples, experiment_id, run_id, key, tags, name, workdir) -> tuple[float, int]:
    trial_train, validation = search_split(spec, examples)
    tokenizer = ckpt.load()[1]
    train_features = training_features(spec, trial_train, tokenizer, cfg.train.max_length, **_packing(cfg))
    val_features = training_features(spec, validation, tokenizer, cfg.train.max_length, **_packing(cfg))

    def train_and_score(params: dict) -> float:
        return train(
            ckpt,
            cfg,
            train_features,
            lr=params["lr"],
            epochs=params["epochs"],
            output_dir=workdir / "trial",
            resume=False,
            eval_features=val_features,
        )[2]

    hook = TrialRuns(experiment_id, run_id, key, tags, name)
    space = SearchSpace(lr=cfg.train.lr, epochs=cfg.train.epochs)
    best = run_search(cfg.train.trials, space, hook.wrap(space, train_and_score), cfg.train.seed)
    shutil.rmtree(workdir / "trial", ignore_errors=True)
    _log_params_once({"best_lr": best["lr"], "best_epochs": best["epochs"]})
    print(f"search: best lr {best['lr']:.3g}, epochs {best['epochs']} after {cfg.train.trials} trials")
    return best["lr"], best["epochs"]


def _workdir(cfg: FinetuneSettings, run, key: str) -> tuple[Path, list]:
    """Where the Trainer saves, and the callbacks that keep its checkpoints (as run artifacts if asked)."""
    if not cfg.train.checkpoint_artifacts:
        workdir = amuro_home() / "finetune" / key
        if not run.resumed:
            shutil.rmtree(workdir, ignore_errors=True)  # stale checkpoints of a run that no longer exists
        return workdir, []
    workdir = Path(tempfile.mkdtemp(prefix=f"amuro-finetune-{key}-"))
    if run.resumed:
        step = restore_checkpoint(run.run_id, workdir / "trainer")
        print(
            f"restored the checkpoint of step {step} uploaded by the previous attempt"
            if step is not None
            else "the previous attempt uploaded no checkpoint: training from the start"
        )
    return workdir, [UploadCheckpoints(run.run_id)]


def _train_and_log(cfg, ckpt, spec, experiment_id, run, key, tags, name) -> None:
    workdir, callbacks = _workdir(cfg, run, key)
    examples = training_examples(spec, cfg)
    log_rows(spec, spec.splits["train"], examples, "train")
    _log_params_once(
        {
            **cfg.params(),
            "train_examples": len(examples),
            "base_location": ckpt.location,
            "warmup_ratio": WARMUP_RATIO,
            "weight_decay": 0.0,
            "optimizer": optimizer_name(),
            "lr_schedule": "linear",
            "training_format": "default" if spec.kind != "chat" else "chat",
        }
    )
    lr, epochs = cfg.train.lr, cfg.train.epochs
    if cfg.train.trials:  # supervised training only (validated)
        lr, epochs = _search(cfg, ckpt, spec, examples, experiment_id, run.run_id, key, tags, name, workdir)
    options = dict(lr=lr, epochs=epochs, output_dir=workdir / "trainer", resume=run.resumed, callbacks=callbacks)
    if cfg.train.tuning == "dpo":
        from amuro.training.preference import preference_rows, train_preference

        _log_params_once({"final_lr": lr, "final_epochs": epochs, "dpo_reference": _reference(cfg)})
        model, tokenizer = train_preference(ckpt, cfg, preference_rows(spec, examples), **options)
    else:
        tokenizer = ckpt.load()[1]
        features = training_features(spec, examples, tokenizer, cfg.train.max_length, **_packing(cfg))
        tokens = sum(len(f["input_ids"]) for f in features)
        _log_params_once({"train_tokens": tokens, "final_lr": lr, "final_epochs": epochs})
        model, tokenizer, _ = train(ckpt, cfg, features, **options)
    _log_model(ckpt, run, model, tokenizer, workdir, cfg.train.precision)


def _reference(cfg: FinetuneSettings) -> str:
    return "the base with its adapters off" if cfg.train.lora else "the base checkpoint"


def _log_model(ckpt, run, model, tokenizer, workdir: Path, precision: str) -> None:
    """The weight change from the base and the tuned model under ``model``; the Trainer's files go."""
    base, _ = ckpt.load()
    mlflow.log_metrics(weight_change(base, model))
    del base
    check_owner(run.run_id)
    log_tuned_model(in_trained_dtype(model, precision), tokenizer)
    shutil.rmtree(workdir, ignore_errors=True)


def _training_versions(spec: data.DatasetSpec, cfg: FinetuneSettings) -> dict[str, str]:
    """The result versions of what a fine-tune uses: its prompts' rendering, the features and the Trainer."""
    return {
        "rendering": rendering_version(spec.task, cfg.protocol),
        "features": str(feature_code.RESULT_VERSION),
        "trainer": str(trainer_code.RESULT_VERSION),
    }


def _replicate(cfg: FinetuneSettings, experiment_id: str, spec, series, ckpt, parent: str | None, name: str) -> str:
    """One finetune run (found, resumed or trained) and its in-domain scores; returns the run id."""
    identity: dict[str, object] = {"model": series.name, "checkpoint": ckpt.revision}
    if cfg.dataset_spec:
        identity["dataset_spec"] = repr(spec)  # a spec file's dataset is identified by its content
    if is_commit(spec.revision):
        identity["dataset_revision"] = spec.revision  # a pinned dataset is identified by its commit
    identity["train_rows"] = rows_digest(training_examples(spec, cfg))
    versions = _training_versions(spec, cfg)
    key = cfg.run_key("finetune", versions, **identity)
    tags = tracking.contract_tags(
        kind="finetune",
        **checkpoint_target(ckpt).base_tags(),
        tuning=cfg.train.tuning_tag,
        train_dataset=spec.name,
        seed=cfg.train.seed,
        source_run_id=ckpt.source_run_id,
        protocol=cfg.protocol,
    )
    tags.update(version_tags("finetune", versions))

    def train(run: tracking.TrackedRun) -> None:
        _train_and_log(cfg, ckpt, spec, experiment_id, run, key, tags, name)
        print(f"{name}: tuned model logged as runs:/{run.run_id}/{MODEL_ARTIFACT}")

    run = tracking.run_once(
        experiment_id, key, tags, name, train, parent_run_id=parent, resumable=True, system_metrics=True
    )
    tracking.note_reuse(run, "finetune", parent)
    if cfg.register:
        version = register_tuned(cfg.register, run.run_id, {**tags, tracking.Tag.RUN_KEY: key})
        print(f"{name}: registered as models:/{cfg.register}/{version}")
    if cfg.evaluate:
        from amuro.commands.in_domain import evaluate_in_domain

        evaluate_in_domain(experiment_id, run.run_id, ckpt, spec, cfg)
    return run.run_id


def _with_seed(cfg: FinetuneSettings, seed: int) -> FinetuneSettings:
    """One replicate's settings: the invocation's, trained with this seed."""
    return replace(cfg, train=replace(cfg.train, seed=seed), seeds=None)


def finetune(cfg: FinetuneSettings) -> str:
    """Fine-tune (or reuse a finished run with the same settings), then score in-domain; returns the run id.

    With several ``seeds``, one replicate per seed, each its own finetune run nested under a group run
    for the invocation, whose id is returned.
    """
    with open_entry("finetune", cfg) as entry:
        experiment_id = entry.experiment_id
        spec = training_spec(cfg)
        check_launch(cfg)
        if cfg.register:
            open_registered_model(cfg.register)
        series = entry.series
        ckpt = series.get(cfg.checkpoint) if cfg.checkpoint else series.last
        name = f"finetune {ckpt.label} {spec.name}"
        seeds = cfg.seed_list
        if len(seeds) == 1:
            run_id = _replicate(_with_seed(cfg, seeds[0]), experiment_id, spec, series, ckpt, None, name)
            entry.invocation.result_run_id = run_id
            return run_id
        key = cfg.run_key("finetune-seeds", seeds=seeds, model=series.name, checkpoint=ckpt.revision)
        with entry.group(
            key, f"{name} seeds {','.join(map(str, seeds))}", tags=tracking.contract_tags(model=series.name)
        ) as parent:
            run_ids = [
                _replicate(_with_seed(cfg, seed), experiment_id, spec, series, ckpt, parent, f"{name} seed{seed}")
                for seed in seeds
            ]
    print(f"{name}: {len(run_ids)} replicates (seeds {', '.join(map(str, seeds))}) under run {parent}")
    return parent
