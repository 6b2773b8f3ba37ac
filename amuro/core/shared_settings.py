"""Settings several entry points declare alike: the experiment, the series, dataset selection, the protocol.

Each is a function returning a fresh field, so every settings class that has one declares it in one line.
"""

from __future__ import annotations

from amuro.core.fields import require, setting
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


def model_setting():
    return setting(
        DEFAULT_SERIES,
        "Checkpoint series: a series name ('tiny' is built if missing), a folder, runs:/<id>, or a hub repo.",
    )


def _require_model(model: str) -> None:
    require(bool(model.strip()), "model must name a series: 'tiny', a folder, or a hub repo id")
