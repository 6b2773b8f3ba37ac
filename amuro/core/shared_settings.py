"""Settings several entry points declare alike (the experiment, the series, dataset selection, the protocol), and
the sweep's longer ones.

Each is a function returning a fresh field, so every settings class that has one declares it in one line;
``SeriesSettings`` is the base of the entry points that read one series (its experiment and model fields first).
"""

from __future__ import annotations

from dataclasses import dataclass

from amuro.core.fields import Settings, require, setting
from amuro.core.protocol import DEFAULT_PROTOCOL, PROTOCOLS

DEFAULT_SERIES = "tiny"
EXPERIMENT_HELP = "MLflow experiment."
SEEDS_HELP = "Fine-tuning seeds (comma-separated integers): one replicate per seed, each its own finetune run."
GPUS_HELP = (
    "Data-parallel training processes, one GPU each, launched with accelerate (the global batch stays "
    "micro-batch x accumulation; without GPUs, CPU processes)."
)
SPEC_HELP = "YAML/JSON dataset spec files declaring extra datasets (comma-separated)."


def experiment_setting():
    return setting(None, EXPERIMENT_HELP, key=False, empty="MLFLOW_EXPERIMENT_NAME, else amuro-char")


def dataset_spec_setting(key: bool = True):
    return setting(None, SPEC_HELP, key=key, empty="no extra datasets")


def dataset_revision_setting():
    # Not in the settings' run key as such: each cell's and fine-tune's key holds the commit of the dataset it reads.
    return setting(
        None,
        "Hub datasets pinned to a commit for this run: NAME=COMMIT (comma-separated; full 40-character commits).",
        key=False,
        empty="the catalogue's revisions",
    )


def lm_eval_tasks_setting():
    return setting(
        None,
        "lm-evaluation-harness tasks, groups or tags scored as datasets (comma-separated, e.g. "
        "arc_easy,hellaswag; needs the lmeval extra).",
        empty="none",
    )


def lm_eval_include_setting():
    return setting(
        None,
        "Folder of lm-evaluation-harness task YAMLs (as lm_eval --include_path); without "
        "--lm-eval-tasks, every task defined in it.",
        empty="none",
    )


def eval_datasets_setting(help_text: str):
    return setting(None, help_text, empty="all, or none when lm-eval tasks are given")


def protocol_setting():
    return setting(
        DEFAULT_PROTOCOL,
        "study (the published code's protocol, byte for byte) or amuro (its fixes); "
        "docs/protocols.md lists every difference.",
        choices=PROTOCOLS,
        covers_nested=True,
    )


def model_setting(more: str = ""):
    return setting(
        DEFAULT_SERIES,
        "Checkpoint series: a series name ('tiny' is built if missing), a folder, runs:/<id>, or a hub repo"
        + more
        + ".",
    )


@dataclass
class SeriesSettings(Settings):
    """Base of the entry points that read one checkpoint series: the experiment, then the series."""

    experiment: str | None = experiment_setting()
    model: str = model_setting()

    def validate(self) -> None:
        require(bool(self.model.strip()), "model must name a series: 'tiny', a folder, or a hub repo id")


def checkpoints_setting():
    return setting(
        "all",
        "'all', 'study' (the study's eight checkpoints, each mapped to this series' nearest), a count "
        "(evenly spaced), or revisions/steps/stages (comma-separated).",
    )


def trust_remote_code_setting():
    return setting(
        False,
        "Run the model repository's own code (allenai/OLMo-1B needs it); only for repositories you trust.",
        key=False,
        flag=True,
    )


def cell_timeout_setting():
    return setting(
        None,
        "Seconds a sweep cell may run: one running longer is killed and counts as failed (its runs end FAILED, "
        "resumed by the next sweep; Ray does not retry it).",
        key=False,
        minimum=1,
        empty="no limit",
    )
