"""Typed settings per entry point, validated on construction, and the canonical run key settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from amuro.errors import UserError


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


@dataclass
class Settings:
    """Base for entry point settings: ``key_fields`` lists what changes results (the run key)."""

    key_fields: tuple[str, ...] = ()

    def key_settings(self) -> dict[str, object]:
        values = asdict(self)
        return {name: values[name] for name in self.key_fields}

    def params(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "key_fields"}


@dataclass
class PretrainConfig(Settings):
    """Train a small OLMo-architecture model from scratch and save a checkpoint series."""

    experiment: str | None = None
    series: str = "tiny"
    steps: int = 600
    num_checkpoints: int = 4
    seed: int = 0
    corpus: str | None = None
    vocab_size: int = 2048
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    seq_len: int = 128
    batch_size: int = 16
    lr: float = 3e-3
    key_fields: tuple[str, ...] = (
        "series", "steps", "num_checkpoints", "seed", "corpus", "vocab_size", "hidden_size", "layers",
        "heads", "seq_len", "batch_size", "lr",
    )

    def __post_init__(self) -> None:
        self.corpus = self.corpus or None
        require(bool(self.series) and "/" not in self.series and not self.series.startswith("."),
                f"series name {self.series!r} is not valid: use a plain name such as 'tiny'")
        require(self.steps >= 1, f"steps must be at least 1, got {self.steps}")
        require(1 <= self.num_checkpoints <= self.steps,
                f"num_checkpoints must be between 1 and steps ({self.steps}), got {self.num_checkpoints}")
        require(self.vocab_size >= 300, f"vocab_size must be at least 300 (bytes + merges), got {self.vocab_size}")
        require(self.hidden_size % self.heads == 0,
                f"hidden_size ({self.hidden_size}) must be divisible by heads ({self.heads})")
        for name in ("hidden_size", "layers", "heads", "seq_len", "batch_size"):
            require(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        require(self.lr > 0, f"lr must be positive, got {self.lr}")


CLASSIFICATION_METHODS = ("next-token", "loglik", "generate")


def eval_settings_of(cfg: Settings):
    """The scoring settings (``EvalSettings``, which validates them) that a config spells out; the rest default."""
    from amuro.eval_runs import EvalSettings

    names = {f.name for f in fields(EvalSettings)}
    return EvalSettings(**{name: getattr(cfg, name) for name in names if hasattr(cfg, name)})


@dataclass
class CrossevalConfig(Settings):
    """Score tuned models (finetune runs) on every selected dataset and prompt format."""

    experiment: str | None = None
    runs: str = "all"
    model: str | None = None
    train_dataset: str | None = None
    steps: str | None = None
    datasets: str = "all"
    formats: str = "all"
    shots: int = 4
    method: str = "next-token"
    max_examples: int | None = None
    batch_size: int = 16
    bootstrap: int = 3000
    seed: int = 0
    with_base: bool = False
    dataset_spec: str | None = None
    key_fields: tuple[str, ...] = ("datasets", "formats", "shots", "method", "max_examples", "bootstrap", "seed")

    def __post_init__(self) -> None:
        self.dataset_spec = self.dataset_spec or None
        self.eval_settings()  # validates the scoring settings

    def eval_settings(self):
        """Pretrain-eval's protocol, so every tuned cell pairs with its base checkpoint's cell."""
        return eval_settings_of(self)


SYNTHETIC_TRAIN_SETS = "synth-nli,synth-paraphrase,synth-summary,synth-qgen"
SWEEP_TINY_EPOCHS = 1   # the embedded study's fine-tuning budget: 20 tuned models within its 15 minutes


@dataclass
class SweepConfig(Settings):
    """The whole study grid: pretrain-eval, finetune, crosseval, then the analysis report."""

    experiment: str | None = None
    model: str = "tiny"
    checkpoints: str = "all"
    train_datasets: str = SYNTHETIC_TRAIN_SETS
    eval_datasets: str = "all"
    formats: str = "all"
    shots: int = 4
    tuning: str = "sft"
    lora: bool = False
    method: str = "next-token"
    max_examples: int | None = 200
    preset: str = "tiny"                  # finetune's preset
    epochs: int | None = None             # None: SWEEP_TINY_EPOCHS with the tiny preset, else the preset's
    max_train_examples: int | None = None
    seed: int = 0
    workers: int = 1
    tracking_uri: str | None = None
    dataset_spec: str | None = None
    key_fields: tuple[str, ...] = (
        "model", "checkpoints", "train_datasets", "eval_datasets", "formats", "shots", "tuning", "lora", "method",
        "max_examples", "preset", "epochs", "max_train_examples", "seed",
    )

    def __post_init__(self) -> None:
        from amuro.errors import unknown

        if self.preset not in FINETUNE_PRESETS:
            raise unknown("finetune preset", self.preset, FINETUNE_PRESETS)
        if self.epochs is None and self.preset == "tiny":
            self.epochs = SWEEP_TINY_EPOCHS
        require(self.epochs is None or self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        require(self.workers >= 1, f"workers must be at least 1, got {self.workers}")
        require(self.shots >= 0, f"shots must be 0 or more, got {self.shots}")
        require(self.max_examples is None or self.max_examples >= 1,
                f"max_examples must be at least 1, got {self.max_examples}")
        if self.tuning not in ("sft", "it"):
            raise unknown("tuning", self.tuning, ("sft", "it"))
        if self.method not in CLASSIFICATION_METHODS:
            raise unknown("scoring method", self.method, CLASSIFICATION_METHODS)
        require(bool(self.train_dataset_list), "train_datasets is empty: name at least one training set")

    @property
    def train_dataset_list(self) -> list[str]:
        return [d.strip() for d in self.train_datasets.split(",") if d.strip()]

    @property
    def resolved_experiment(self) -> str:
        from amuro.tracking import experiment_name

        return experiment_name(self.experiment)


@dataclass
class PretrainEvalConfig(Settings):
    """Score checkpoints of a series few-shot on every selected dataset and prompt format."""

    experiment: str | None = None
    model: str = "tiny"
    checkpoints: str = "all"
    datasets: str = "all"
    formats: str = "default"
    shots: int = 4
    method: str = "next-token"
    max_examples: int | None = None
    batch_size: int = 16
    seed: int = 0
    bootstrap: int = 3000
    max_new_tokens: int = 60
    stop: str = "default"
    demos: str = "train"
    dataset_spec: str | None = None
    key_fields: tuple[str, ...] = (
        "model", "checkpoints", "datasets", "formats", "shots", "method", "max_examples", "seed", "bootstrap",
        "max_new_tokens", "stop", "demos", "dataset_spec",
    )

    def __post_init__(self) -> None:
        require(bool(self.model.strip()), "model must name a series: 'tiny', a folder, or a hub repo id")
        self.dataset_spec = self.dataset_spec or None
        self.eval_settings()  # validates the scoring settings

    def eval_settings(self):
        return eval_settings_of(self)


TUNINGS = ("sft", "it")
# Training settings by preset; a value given explicitly always wins. ``tiny`` (the default) makes the small
# synthetic series learn in a couple of minutes on a CPU; ``amuro-char`` is the study's setting for OLMo-1B.
FINETUNE_PRESETS: dict[str, dict[str, object]] = {
    "tiny": {"epochs": 2, "lr": 3e-3, "batch_size": 4, "grad_accum": 1, "max_length": 512, "train_shots": 4},
    "amuro-char": {"epochs": 3, "lr": 2e-6, "batch_size": 8, "grad_accum": 1, "max_length": 2048, "train_shots": 0},
}
PRESET_OVERRIDES: dict[tuple[str, str], dict[str, object]] = {
    ("amuro-char", "it"): {"epochs": 5},          # instruction tuning ran 5 epochs in the study
    ("amuro-char", "xsum"): {"lr": 2e-7},         # and XSum a 10x lower learning rate
}


@dataclass
class FinetuneConfig(Settings):
    """Fine-tune one checkpoint of a series on one training set (supervised or instruction tuning)."""

    experiment: str | None = None
    model: str = "tiny"
    checkpoint: str | None = None         # revision or step; empty: the series' last checkpoint
    dataset: str = "synth-nli"            # catalogue name (or a name declared in dataset_spec)
    dataset_spec: str | None = None       # YAML/JSON file declaring extra datasets
    tuning: str = "sft"
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    preset: str = "tiny"
    epochs: int | None = None             # None: from the preset
    lr: float | None = None
    batch_size: int | None = None
    grad_accum: int | None = None
    max_length: int | None = None
    train_shots: int | None = None        # demonstrations packed before a training example (0 to this many)
    max_train_examples: int | None = None
    seed: int = 0
    trials: int = 0
    evaluate: bool = True
    eval_shots: int = 4
    eval_max_examples: int | None = None
    save_steps: int | None = None         # Trainer checkpoint interval; None: about ten per run
    key_fields: tuple[str, ...] = (
        "model", "checkpoint", "dataset", "tuning", "lora", "lora_r", "lora_alpha", "lora_dropout", "epochs", "lr",
        "batch_size", "grad_accum", "max_length", "train_shots", "max_train_examples", "seed", "trials",
    )

    def __post_init__(self) -> None:
        from amuro.errors import unknown

        if self.preset not in FINETUNE_PRESETS:
            raise unknown("finetune preset", self.preset, FINETUNE_PRESETS)
        if self.tuning not in TUNINGS:
            raise unknown("tuning", self.tuning, TUNINGS)
        self.checkpoint = str(self.checkpoint).strip() if self.checkpoint not in (None, "") else None
        self.dataset_spec = self.dataset_spec or None
        defaults = {**FINETUNE_PRESETS[self.preset], **PRESET_OVERRIDES.get((self.preset, self.tuning), {}),
                    **PRESET_OVERRIDES.get((self.preset, self.dataset), {})}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        require(bool(self.model.strip()), "model must name a series: 'tiny', a folder, or a hub repo id")
        require(bool(self.dataset.strip()), "dataset must name a training set, e.g. synth-nli")
        require(self.lr > 0, f"lr must be positive, got {self.lr}: use e.g. --lr 1e-3")
        require(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        for name in ("batch_size", "grad_accum", "lora_r", "lora_alpha"):
            require(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        require(self.train_shots >= 0, f"train_shots must be 0 or more, got {self.train_shots}")
        require(self.max_length >= 8, f"max_length must be at least 8 tokens, got {self.max_length}")
        require(0 <= self.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        require(self.max_train_examples is None or self.max_train_examples >= 1,
                f"max_train_examples must be at least 1 (or empty for all), got {self.max_train_examples}")
        require(self.trials >= 0, f"trials must be 0 (no search) or more, got {self.trials}")
        require(self.eval_shots >= 0, f"eval_shots must be 0 or more, got {self.eval_shots}")
        require(self.eval_max_examples is None or self.eval_max_examples >= 1,
                f"eval_max_examples must be at least 1 (or empty for all), got {self.eval_max_examples}")
        require(self.save_steps is None or self.save_steps >= 1,
                f"save_steps must be at least 1, got {self.save_steps}")

    @property
    def tuning_tag(self) -> str:
        """``amuro.tuning``: ``sft`` / ``it``, with ``+lora`` for LoRA."""
        return self.tuning + ("+lora" if self.lora else "")
