"""What an eval cell scores: a base checkpoint or a tuned model, with the contract tags it carries."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from amuro.models.size import checkpoint_parameters
from amuro.models.tuned import MODEL_ARTIFACT, load_tuned


@dataclass(frozen=True)
class EvalTarget:
    """What is scored: a base checkpoint or a tuned model, with its contract tags."""

    model: str  # amuro.model: series id (hub repo or local series name)
    revision: str  # amuro.revision of the base checkpoint
    step: int
    tokens: int | None
    tuning: str  # 'none' for base checkpoints, 'sft', 'it', 'dpo', with '+lora' suffix for LoRA
    train_dataset: str  # 'none' for base checkpoints
    source_run_id: str | None  # pretrain run (local series) / finetune run (tuned); None for hub checkpoints
    seed: int
    label: str  # for run names: "tiny@step400" or "tiny@step400+synth-nli"
    load: Callable[..., tuple]  # (dtype=...) -> (model, tokenizer); called at most once, only if some cell has work
    # Where the weights live, recorded on each eval run (``amuro.<key>`` tags) and on a LoggedModel:
    # hub_repo / hub_revision / hub_commit for hub checkpoints, artifact_uri for logged weights.
    reference: Mapping[str, str] = field(default_factory=dict)
    train_seed: int | None = None  # amuro.train_seed: the finetune run's seed; None for base checkpoints
    model_params: int | None = None  # amuro.model_params: the base model's parameter count, None if unknown

    def base_tags(self) -> dict[str, object]:
        """The contract tags of the checkpoint this model starts from: series, revision, step, tokens, size."""
        names = ("model", "revision", "step", "tokens", "model_params")
        return {name: getattr(self, name) for name in names}

    @property
    def run_label(self) -> str:
        """What a run name says the scored model is: ``tiny@step400`` or ``tiny@step400 +synth-nli seed1``."""
        if self.train_seed is None:
            return self.label
        return f"{self.label.replace('+', ' +')} seed{self.train_seed}"


def checkpoint_target(ckpt, *, seed: int = 0) -> EvalTarget:
    """The EvalTarget of a base checkpoint (``amuro.models.series.Checkpoint``)."""
    if ckpt.hub_revision:
        reference = {"hub_repo": ckpt.location, "hub_revision": ckpt.hub_revision, "hub_commit": ckpt.commit or ""}
    elif ckpt.source_run_id and ckpt.artifact_path:
        reference = {"artifact_uri": f"runs:/{ckpt.source_run_id}/{ckpt.artifact_path}"}
    else:
        reference = {"local_path": ckpt.location}
    return EvalTarget(
        model=ckpt.series,
        revision=ckpt.revision,
        step=ckpt.step,
        tokens=ckpt.tokens,
        tuning="none",
        train_dataset="none",
        source_run_id=ckpt.source_run_id,
        seed=seed,
        label=ckpt.label,
        load=ckpt.load,
        reference=reference,
        model_params=checkpoint_parameters(ckpt),
    )


def tuned_target(
    *,
    model: str,
    revision: str,
    step: int,
    tokens: int | None,
    tuning: str,
    train_dataset: str,
    run_id: str,
    seed: int,
    train_seed: int | None = None,
    model_params: int | None = None,
    trust_remote_code: bool = False,
) -> EvalTarget:
    """The EvalTarget of a finetune run's model; finetune and crosseval both build it here, so their cell keys
    match and crosseval reuses the in-domain cells finetune scored."""
    return EvalTarget(
        model=model,
        revision=revision,
        step=step,
        tokens=tokens,
        tuning=tuning,
        train_dataset=train_dataset,
        source_run_id=run_id,
        seed=seed,
        label=f"{model.split('/')[-1]}@step{step}+{train_dataset}",
        load=lambda **options: load_tuned(run_id, trust_remote_code=trust_remote_code, **options),
        reference={"artifact_uri": f"runs:/{run_id}/{MODEL_ARTIFACT}"},
        train_seed=train_seed,
        model_params=model_params,
    )
