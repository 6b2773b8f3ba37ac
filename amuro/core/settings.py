"""Every entry point's settings, each declared once (default, help, validation, run key; see ``fields``).

``EvalSettings`` (how a cell is scored) is nested where it is shared: pretrain-eval, crosseval and the
sweep score with it, and finetune's in-domain scoring uses it under the ``eval-`` options. ``TrainSettings``
(how a model is fine-tuned, ``train_settings``) is nested in finetune's and the sweep's settings, so every
finetune cell of a sweep is the sweep's own training settings for one checkpoint, training set and seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import ClassVar

from amuro.core.checkpoints_settings import CheckpointsSettings
from amuro.core.errors import UserError
from amuro.core.eval_settings import CLASSIFICATION_METHODS, EvalSettings  # noqa: F401  (imported from here)
from amuro.core.fields import Settings, declared, require, setting, split_list
from amuro.core.shared_settings import (
    DEFAULT_SERIES,
    GPUS_HELP,
    SEEDS_HELP,
    SeriesSettings,
    cell_timeout_setting,
    checkpoints_setting,
    dataset_revision_setting,
    dataset_spec_setting,
    eval_datasets_setting,
    experiment_setting,
    lm_eval_include_setting,
    lm_eval_tasks_setting,
    model_setting,
    protocol_setting,
    trust_remote_code_setting,
)
from amuro.core.size_settings import model_file_setting, model_list, sizes_setting, widths
from amuro.core.train_settings import TrainSettings, resolve_training
from amuro.core.values import seed_list

ENGINES = ("local", "ray")
CELL_KINDS = ("eval", "finetune")  # resources per kind of sweep cell: pretrain-eval and crosseval are eval
SYNTHETIC_TRAIN_SETS = "synth-nli,synth-paraphrase,synth-summary,synth-qgen"


@dataclass
class PretrainSettings(Settings):
    """Train a small OLMo-architecture model from scratch and save a checkpoint series."""

    entry_point: ClassVar[str] = "pretrain"

    experiment: str | None = experiment_setting()
    series: str = setting(DEFAULT_SERIES, "Name of the checkpoint series to build.")
    steps: int = setting(600, "Training steps.", minimum=1)
    num_checkpoints: int = setting(
        4, "Checkpoints to save, dense early and sparse late; the last is the final step.", minimum=1
    )
    seed: int = setting(0, "Seed of the corpus order and the initial weights.")
    corpus: str | None = setting(None, "Text file or folder of .txt files.", empty="the synthetic corpus")
    vocab_size: int = setting(2048, "Tokenizer vocabulary (bytes + merges).", minimum=300)
    hidden_size: int = setting(128, "Model width.", minimum=8)
    layers: int = setting(4, "Transformer layers.", minimum=1)
    heads: int = setting(4, "Attention heads.", minimum=1)
    seq_len: int = setting(128, "Training sequence length in tokens.", minimum=8)
    batch_size: int = setting(16, "Sequences per step.", minimum=1)
    lr: float = setting(3e-3, "Peak learning rate.", minimum=0, above=True)
    sizes: str | None = sizes_setting()

    def validate(self) -> None:
        require(
            "/" not in self.series and not self.series.startswith(".") and bool(self.series),
            f"series name {self.series!r} is not valid: use a plain name such as 'tiny'",
        )
        require(
            self.num_checkpoints <= self.steps,
            f"num_checkpoints must be between 1 and steps ({self.steps}), got {self.num_checkpoints}",
        )
        require(
            self.hidden_size % self.heads == 0,
            f"hidden_size ({self.hidden_size}) must be divisible by heads ({self.heads})",
        )
        if self.sizes:
            widths(self.sizes, self.hidden_size, self.heads)


@dataclass
class PretrainEvalSettings(SeriesSettings):
    """Score checkpoints of a series few-shot on every selected dataset and prompt format."""

    entry_point: ClassVar[str] = "pretrain-eval"

    checkpoints: str = checkpoints_setting()
    trust_remote_code: bool = trust_remote_code_setting()
    datasets: str | None = eval_datasets_setting(
        "Dataset names, task families, 'all' (offline: the datasets available locally) or 'none'."
    )
    formats: str = setting("default", "Prompt formats (comma-separated) or 'all'.")
    eval: EvalSettings = setting(help="How each cell is scored.", factory=EvalSettings, option="")
    dataset_spec: str | None = dataset_spec_setting()
    dataset_revision: str | None = dataset_revision_setting()
    lm_eval_tasks: str | None = lm_eval_tasks_setting()
    lm_eval_include: str | None = lm_eval_include_setting()


@dataclass
class FinetuneSettings(SeriesSettings):
    """Fine-tune one checkpoint of a series on one training set (supervised or instruction tuning)."""

    entry_point: ClassVar[str] = "finetune"

    protocol: str = protocol_setting()
    checkpoint: str | None = setting(None, "Revision or step of the base checkpoint.", empty="the series' last")
    trust_remote_code: bool = trust_remote_code_setting()
    dataset: str = setting(
        "synth-nli", "Training set: a catalogue name (see `amuro datasets`) or one declared in --dataset-spec."
    )
    dataset_spec: str | None = dataset_spec_setting(key=False)
    dataset_revision: str | None = dataset_revision_setting()
    train: TrainSettings = setting(help="How the model is trained.", factory=TrainSettings, flat=True)
    seeds: str | None = setting(None, SEEDS_HELP, key=False, empty="--seed alone")
    gpus: int = setting(1, GPUS_HELP, key=False, minimum=1)
    register: str | None = setting(
        None,
        "Register the tuned model in the MLflow Model Registry under this name (models:/NAME/VERSION).",
        key=False,
        empty="not registered",
    )
    evaluate: bool = setting(
        True, "Score the tuned model and its base on the in-domain eval sets afterwards.", key=False, option="eval"
    )
    eval: EvalSettings = setting(
        help="How the in-domain cells are scored.", factory=EvalSettings, key=False, option="eval"
    )

    def resolve(self) -> None:
        self.train = resolve_training(self.train, self.protocol, self.dataset)
        if self.eval.protocol != self.protocol:  # the in-domain cells are scored under the same protocol
            self.eval = dataclasses.replace(self.eval, protocol=self.protocol)

    def validate(self) -> None:
        super().validate()
        require(bool(self.dataset.strip()), "dataset must name a training set, e.g. synth-nli")
        seed_list(self.seeds, self.train.seed)
        self.train.per_process(self.gpus)

    @property
    def seed_list(self) -> list[int]:
        return seed_list(self.seeds, self.train.seed)


@dataclass
class CrossevalSettings(Settings):
    """Score tuned models (finetune runs) on every selected dataset and prompt format."""

    entry_point: ClassVar[str] = "crosseval"

    experiment: str | None = experiment_setting()
    runs: str = setting(
        "all",
        "Finetune run ids (comma-separated), a sweep run id, or 'all' finetune runs of the experiment.",
        key=False,
    )
    model: str | None = setting(None, "Only finetune runs of this series.", key=False, empty="any")
    train_dataset: str | None = setting(
        None, "Only finetune runs on these training sets (comma-separated).", key=False, empty="any"
    )
    steps: str | None = setting(
        None, "Only finetune runs of these base steps (comma-separated).", key=False, empty="any"
    )
    trust_remote_code: bool = trust_remote_code_setting()
    datasets: str | None = eval_datasets_setting(
        "Dataset names, task families, 'all' (every eval set reachable offline) or 'none'."
    )
    formats: str = setting("all", "Prompt formats (comma-separated) or 'all'.")
    eval: EvalSettings = setting(
        help="How each cell is scored (pretrain-eval's protocol, so every tuned cell "
        "pairs with its base checkpoint's cell).",
        factory=EvalSettings,
        option="",
    )
    with_base: bool = setting(
        False, "Also score missing base-checkpoint partners of the tuned cells.", key=False, flag=True
    )
    dataset_spec: str | None = dataset_spec_setting(key=False)
    dataset_revision: str | None = dataset_revision_setting()
    lm_eval_tasks: str | None = lm_eval_tasks_setting()
    lm_eval_include: str | None = lm_eval_include_setting()


# The training settings a sweep's key has always held, set or not.
SWEEP_KEY_TRAINING = ("tuning", "lora", "epochs", "max_train_examples", "train_seed")


def _sweep_eval() -> EvalSettings:
    return EvalSettings(max_examples=200)


@dataclass
class SweepSettings(Settings):
    """The whole study grid: pretrain-eval, finetune, crosseval, then the analysis report."""

    entry_point: ClassVar[str] = "sweep"

    experiment: str | None = experiment_setting()
    model: str = model_setting("; several series comma-separated, each its own grid")
    model_file: str | None = model_file_setting()
    checkpoints: str = checkpoints_setting()
    trust_remote_code: bool = trust_remote_code_setting()
    train_datasets: str = setting(SYNTHETIC_TRAIN_SETS, "Training sets, one finetune cell per checkpoint each.")
    eval_datasets: str | None = eval_datasets_setting("Eval sets of pretrain-eval and crosseval, 'all' or 'none'.")
    formats: str = setting("all", "Prompt formats (comma-separated) or 'all'.")
    eval: EvalSettings = setting(help="How each eval cell is scored.", factory=_sweep_eval, option="")
    train: TrainSettings = setting(
        help="How each finetune cell trains.",
        factory=TrainSettings,
        flat=True,
        renamed=(("seed", "train_seed"), ("batch_size", "train_batch_size"), ("dtype", "train_dtype")),
    )
    seeds: str | None = setting(
        None, SEEDS_HELP + " Every finetune cell is run once per seed.", key=False, empty="--train-seed alone"
    )
    workers: int | None = setting(
        None,
        "Cells run at once (against a tracking server when more than one).",
        key=False,
        minimum=1,
        empty="local engine: one per GPU, else one per core as memory allows; ray: 1",
    )
    engine: str = setting(
        "local",
        "Where cells run: local (processes on this machine, a GPU slot each) or ray "
        "(Ray tasks; pip install 'amuro[ray]').",
        key=False,
        choices=ENGINES,
    )
    address: str | None = setting(
        None,
        "Ray cluster to join (ray engine): auto, host:port or ray://head:10001.",
        key=False,
        empty="a local Ray instance, stopped at the end",
    )
    gpus_per_cell: str | None = setting(
        None,
        "GPUs per cell: a number, or per kind as finetune=1,eval=0.5 (a finetune cell given N trains in N "
        "data-parallel processes).",
        key=False,
        empty="1 where there are GPUs, else 0",
    )
    cpus_per_cell: str | None = setting(
        None,
        "CPUs per cell, the torch threads it runs on (and its Ray CPU "
        "request): a number, or per kind as finetune=4,eval=2.",
        key=False,
        empty="local engine: this machine's cores shared among the workers, at most OMP_NUM_THREADS; ray: 1",
    )
    max_retries: int = setting(
        2, "Ray engine: times a cell whose worker or node died is retried.", key=False, minimum=0
    )
    cell_timeout: int | None = cell_timeout_setting()
    tracking_uri: str | None = setting(
        None,
        "Tracking server for the cells (a local sqlite store is served by a "
        "local mlflow server when workers > 1); under mlflow run, set "
        "MLFLOW_TRACKING_URI instead.",
        key=False,
        secret=True,
        empty="the current URI",
    )
    dataset_spec: str | None = dataset_spec_setting(key=False)
    dataset_revision: str | None = dataset_revision_setting()
    lm_eval_tasks: str | None = lm_eval_tasks_setting()
    lm_eval_include: str | None = lm_eval_include_setting()

    def resolve(self) -> None:
        self.train = resolve_training(self.train, self.eval.protocol)

    def validate(self) -> None:
        require(bool(self.train_dataset_list), "train_datasets is empty: name at least one training set")
        seed_list(self.seeds, self.train.seed)
        model_list(self.model, None)  # a model file is read when the sweep starts
        self.cell_resources("gpus_per_cell", 0)
        self.cell_resources("cpus_per_cell", 1)

    def key_settings(self) -> dict[str, object]:
        """The cells resolve the preset for their training sets, so the preset itself enters the sweep's key. The
        training settings a sweep could not set before it took every finetune option enter it only when set, so a
        sweep that leaves them alone keeps the key it always had."""
        values = {**super().key_settings(), "preset": self.train.preset}
        meta = declared(next(f for f in fields(self) if f.name == "train"))
        for name, default in meta.outer_names(TrainSettings().key_settings()).items():
            if name not in SWEEP_KEY_TRAINING and values[name] == default:
                del values[name]
        return values

    def cell_resources(self, name: str, default: float) -> dict[str, float]:
        """``gpus_per_cell`` / ``cpus_per_cell`` by kind of cell: ``"1"`` or ``"finetune=1,eval=0.5"``."""
        text = getattr(self, name)
        values = dict.fromkeys(CELL_KINDS, float(default))
        for part in split_list(text or ""):
            kind, _, number = part.rpartition("=")
            kinds = [kind.strip()] if kind else list(CELL_KINDS)
            require(
                all(k in CELL_KINDS for k in kinds),
                f"{name.replace('_', '-')} names an unknown kind of cell {kind!r}: use a number, or eval=N,finetune=N",
            )
            try:
                amount = float(number)
            except ValueError:
                amount = -1.0
            require(amount >= 0, f"{name.replace('_', '-')} takes a number of at least 0 per cell, got {part!r}")
            values.update(dict.fromkeys(kinds, amount))
        return values

    @property
    def seed_list(self) -> list[int]:
        return seed_list(self.seeds, self.train.seed)

    @property
    def model_list(self) -> list[str]:
        return model_list(self.model, self.model_file)

    @property
    def train_dataset_list(self) -> list[str]:
        return split_list(self.train_datasets)


ENTRY_POINT_SETTINGS: dict[str, type[Settings]] = {
    cls.entry_point: cls
    for cls in (PretrainSettings, PretrainEvalSettings, FinetuneSettings, CrossevalSettings, SweepSettings)
} | {CheckpointsSettings.entry_point: CheckpointsSettings}


def settings_class(entry_point: str) -> type[Settings]:
    try:
        return ENTRY_POINT_SETTINGS[entry_point]
    except KeyError:
        raise UserError(f"no entry point {entry_point!r}: valid: {', '.join(ENTRY_POINT_SETTINGS)}") from None
