"""How a model is fine-tuned (``TrainSettings``, nested in finetune's and the sweep's settings) and its presets.

A preset is a YAML file in ``amuro/core/presets/``: the training settings it fills in, and overrides by the
kind of tuning, the training set, or ``sweep`` (what every finetune cell of a sweep shares). A value given
explicitly always wins; ``resolve_training`` is the one place presets are applied.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar

import yaml

from amuro.core.errors import UserError, unknown
from amuro.core.fields import Settings, require, setting
from amuro.core.precision import dtype_setting, keyed, resolve_dtype
from amuro.core.protocol import STUDY_MICRO_BATCH, STUDY_TRAIN_SEED

TUNINGS = ("sft", "it", "dpo")
# TRL's DPO loss types that need no setting beyond beta (DPOConfig.loss_type)
DPO_LOSSES = ("sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "apo_zero", "apo_down", "sigmoid_norm")
DPO_DEFAULTS = {"dpo_beta": 0.1, "dpo_loss": "sigmoid"}
PRESET_FOLDER = Path(__file__).with_name("presets")
PRESETS = tuple(sorted((path.stem for path in PRESET_FOLDER.glob("*.yaml")), key=lambda name: name != "tiny"))
DEFAULT_PRESET, STUDY_PRESET = "tiny", "amuro-char"
SWEEP = "sweep"
FILLED = ("epochs", "lr", "batch_size", "grad_accum", "max_length", "train_shots")  # what a preset may set


@dataclass(frozen=True)
class Preset:
    name: str
    settings: dict[str, object]
    overrides: dict[str, dict[str, object]]

    @property
    def summary(self) -> str:
        """``tiny (epochs 2, lr 0.003, ...; sweep: epochs 1)``, for the help."""

        def listed(values: dict[str, object]) -> str:
            return ", ".join(
                f"{name.replace('_', ' ')} {value:g}"
                if isinstance(value, float)
                else f"{name.replace('_', ' ')} {value}"
                for name, value in values.items()
            )

        overrides = "".join(f"; {context}: {listed(values)}" for context, values in self.overrides.items())
        return f"{self.name} ({listed(self.settings)}{overrides})"


@cache
def load_preset(name: str) -> Preset:
    """The preset file ``presets/<name>.yaml``; a name it sets that no preset may set is a one-line error."""
    if name not in PRESETS:
        raise unknown("preset", name, PRESETS)
    path = PRESET_FOLDER / f"{name}.yaml"
    document = yaml.safe_load(path.read_text()) or {}
    overrides = document.get("overrides") or {}
    for values in (document.get("settings") or {}, *overrides.values()):
        for setting_name in values:
            if setting_name not in FILLED:
                raise UserError(
                    f"preset {path} sets {setting_name!r}, which a preset cannot set: valid: {', '.join(FILLED)}"
                )
    return Preset(name, document.get("settings") or {}, overrides)


PRESET_HELP = (
    "Defaults of the training settings, from amuro/core/presets/NAME.yaml: "
    + " or ".join(load_preset(name).summary for name in PRESETS)
    + "; under --protocol study batch 1 x 8 accumulation steps."
)


@dataclass
class TrainSettings(Settings):
    """How a model is fine-tuned: the kind of tuning, LoRA, the preset and what it fills in, seed and search."""

    entry_point: ClassVar[str] = "train"

    tuning: str = setting(
        "sft",
        "sft: one task, loss on the answer; it: a chat mixture, loss on assistant turns; dpo: preference pairs, "
        "TRL's DPOTrainer.",
        choices=TUNINGS,
    )
    dpo_beta: float | None = setting(
        None,
        "DPO's beta: how far the tuned model may move from the reference (higher: closer).",
        minimum=0,
        above=True,
        empty=f"{DPO_DEFAULTS['dpo_beta']} under --tuning dpo",
    )
    dpo_loss: str | None = setting(
        None,
        "DPO's loss type (TRL's loss_type).",
        choices=DPO_LOSSES,
        empty=f"{DPO_DEFAULTS['dpo_loss']} under --tuning dpo",
    )
    lora: bool = setting(
        False, "Train LoRA adapters (merged into the saved weights) instead of all weights.", flag=True
    )
    lora_r: int = setting(8, "LoRA rank.", minimum=1)
    lora_alpha: int = setting(16, "LoRA alpha.", minimum=1)
    lora_dropout: float = setting(0.05, "LoRA dropout, in [0, 1).", minimum=0)
    preset: str | None = setting(
        None, PRESET_HELP, key=False, choices=PRESETS, empty=f"{DEFAULT_PRESET}; {STUDY_PRESET} under --protocol study"
    )
    epochs: int | None = setting(None, "Training epochs.", minimum=1, empty="the preset's")
    lr: float | None = setting(None, "Peak learning rate.", minimum=0, above=True, empty="the preset's")
    batch_size: int | None = setting(None, "Examples per device step.", minimum=1, empty="the preset's")
    grad_accum: int | None = setting(None, "Steps per optimizer update.", minimum=1, empty="the preset's")
    max_length: int | None = setting(None, "Longest training sequence in tokens.", minimum=8, empty="the preset's")
    train_shots: int | None = setting(
        None,
        "Pack 0 to this many examples before each one, laid out as a few-shot prompt.",
        minimum=0,
        empty="the preset's",
    )
    max_train_examples: int | None = setting(
        None, "Seeded subsample of the training split.", minimum=1, empty="all of it"
    )
    seed: int | None = setting(
        None,
        "Seed of the subsample, the data order and the initial adapter weights.",
        empty=f"0; {STUDY_TRAIN_SEED} under --protocol study",
    )
    trials: int = setting(0, "Optuna trials searching lr and epochs on the validation split (0: no search).", minimum=0)
    save_steps: int | None = setting(
        None, "Trainer checkpoint interval in steps.", key=False, minimum=1, empty="about ten per run"
    )
    checkpoint_artifacts: bool = setting(
        False,
        "Upload each Trainer checkpoint as an artifact of the run, so a "
        "retry on any machine resumes from it in the same run.",
        key=False,
        flag=True,
    )
    fsdp: bool = setting(
        False,
        "Shard weights, gradients and optimizer state across the training processes (FSDP through accelerate), "
        "for a model that does not fit one GPU.",
        key=False,
        flag=True,
    )
    deepspeed: str | None = setting(
        None,
        "Train with DeepSpeed (pip install 'amuro[deepspeed]') from this JSON config, or 'zero3': the "
        "study's ZeRO-3 config, shipped with amuro.",
        key=False,
        empty="no DeepSpeed",
    )

    dtype: str = dtype_setting("train")
    gradient_checkpointing: bool = setting(
        False,
        "Recompute each layer's activations in the backward pass: far less memory for about a third more compute.",
        key=False,
        flag=True,
    )

    @property
    def precision(self) -> str:
        """The dtype training autocasts to on this machine (fp32 master weights whatever it is)."""
        return resolve_dtype(self.dtype, "", "train")

    def effective_values(self) -> dict[str, object]:
        return {**super().effective_values(), "dtype": self.precision}

    def validate(self) -> None:
        require(self.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        require(
            not (self.tuning == "dpo" and self.trials),
            "the search (--trials) tunes supervised training only: use --trials 0 with --tuning dpo",
        )
        require(not (self.fsdp and self.deepspeed), "--fsdp and --deepspeed both shard the model: choose one of them")
        require(
            not (self.lora and (self.fsdp or self.deepspeed)),
            "LoRA trains few weights and needs no sharding: drop --fsdp/--deepspeed, or --lora",
        )

    def key_settings(self) -> dict[str, object]:
        """DPO's settings enter the key only where they are set (every run of ``--tuning dpo``), so the keys of
        supervised and instruction tuning stay what they were."""
        values = keyed(super().key_settings(), self.precision)
        return {name: value for name, value in values.items() if not (name in DPO_DEFAULTS and value is None)}

    def per_process(self, processes: int) -> tuple[int, int]:
        """(micro-batch, accumulation) of each of ``processes`` data-parallel processes, so that together they
        take the global batch, micro-batch x accumulation: the accumulation divided when it divides evenly, else
        a smaller micro-batch."""
        batch, accum = self.batch_size or 1, self.grad_accum or 1
        if accum % processes == 0:
            return batch, accum // processes
        share = batch * accum // processes
        require(
            batch * accum % processes == 0,
            f"the global batch of {batch * accum} (--batch-size {batch} x --grad-accum {accum}) cannot be split "
            f"over --gpus {processes} processes: make it a multiple of {processes}, or change --gpus",
        )
        micro = math.gcd(batch, share)
        return micro, share // micro

    @property
    def tuning_tag(self) -> str:
        """``amuro.tuning``: ``sft`` / ``it`` / ``dpo``, with ``+lora`` for LoRA."""
        return self.tuning + ("+lora" if self.lora else "")


def resolve_training(train: TrainSettings, protocol: str, dataset: str | None = None) -> TrainSettings:
    """``train`` with what it leaves unset filled in: the preset and the seed from the protocol, then, for one
    training set, the preset's settings (with its overrides for the kind of tuning and the training set, and the
    study protocol's micro-batches); without a training set (a sweep, whose cells resolve their own), only the
    preset's ``sweep`` overrides."""
    study = protocol == "study"
    preset = load_preset(train.preset or (STUDY_PRESET if study else DEFAULT_PRESET))
    if dataset is None:
        defaults = dict(preset.overrides.get(SWEEP, {}))
    else:
        defaults = {
            **preset.settings,
            **preset.overrides.get(train.tuning, {}),
            **preset.overrides.get(dataset, {}),
            **(STUDY_MICRO_BATCH if study else {}),
        }
    unset = {name: value for name, value in defaults.items() if getattr(train, name) is None}
    seed = train.seed if train.seed is not None else (STUDY_TRAIN_SEED if study else 0)
    if train.tuning == "dpo":
        unset.update({name: value for name, value in DPO_DEFAULTS.items() if getattr(train, name) is None})
    return dataclasses.replace(train, preset=preset.name, seed=seed, **unset)
