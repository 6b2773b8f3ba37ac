"""The study's released tables, row by row, as eval-run tags of the tracking contract.

Model ids (see ``data/README.md``) name the checkpoint and the tuning; eval-dataset names carry
the prompt format as a suffix. Dataset names become the catalogue's names and task families,
and the relation of a tuned row follows from the training and eval datasets as amuro's own
crosseval tags it (docs/entry-points/analyze.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MODEL = "allenai/OLMo-1B-hf"
# OLMo-1B-hf's main is its last branch, step738020-tokens3094B; step738000 is its own branch.
MAIN_STEP = 738020
REFERENCE = "Sun & Dredze 2024, arXiv 2408.06663"
# The multiple-choice table (OLMo's evaluation pipeline) is 4-shot throughout.
MULTIPLE_CHOICE_SHOTS = 4

TRAIN_DATASETS = {
    "mnli": "mnli",
    "paws": "paws",
    "xsum": "xsum",
    "socialiqa": "socialiqa",
    "tulu": "tulu_v2",
}
MULTIPLE_CHOICE = (
    "arc_easy",
    "arc_challenge",
    "boolq",
    "hellaswag",
    "openbookqa",
    "sciq_mc",
    "rte_mc",
    "qqp_mc",
)
# Items in the validation split each multiple-choice set is scored on: every released score
# of the multiple-choice table is a whole number of these (k / n exactly).
VALIDATION_ITEMS = {
    "arc_easy": 570,
    "arc_challenge": 299,
    "boolq": 3270,
    "hellaswag": 10042,
    "openbookqa": 500,
    "sciq_mc": 1000,
    "rte_mc": 277,
    "qqp_mc": 40430,
}
TASKS = {
    "mnli": "nli",
    "mnli_matched": "nli",
    "mnli_mismatched": "nli",
    "rte": "nli",
    "gpt3nli": "nli",
    "paws": "paraphrase",
    "qqp": "paraphrase",
    "stsb": "paraphrase",
    "xsum": "summary",
    "xlsum": "summary",
    "cnn_dailymail": "summary",
    "socialiqa": "qgen",
    "sciq": "qgen",
    "tweetqa": "qgen",
    "llmbar_natural": "instruction-following",
    "llmbar_adversarial_manual": "instruction-following",
    "llmbar_adversarial_neighbor": "instruction-following",
    "tulu_v2": "chat",
    **{name: "mc" for name in MULTIPLE_CHOICE},
}
GENERATION_TASKS = ("summary", "qgen")
# Eval datasets in-domain for a training set beside itself (the catalogue's in_domain_of; for
# instruction tuning, the multiple-choice suites it targets, as the study groups them).
IN_DOMAIN = {
    "mnli": ("mnli_matched", "mnli_mismatched"),
    "xsum": ("xlsum",),
    "tulu_v2": MULTIPLE_CHOICE,
}
# Sets the study scored on a split whose labels are hidden (SetFit's test splits carry the
# label -1 everywhere): each released score is the share of one answer, not an ability.
SINGLE_CLASS_SETS = {
    name: "the study scored its test split, whose labels are hidden (-1 on every item): the "
    "released score is the share of 'no' answers"
    for name in ("qqp", "stsb")
}
FORMAT_SUFFIXES = {"_instruct": "instruct", "_inputoutput": "io"}
RENAMED = {"cnn": "cnn_dailymail"}
# In the multiple-choice table these sets are scored by ranking answers, not as the other
# table scores them, so they get names of their own (as the catalogue's sciq_mc).
MULTIPLE_CHOICE_RENAMED = {"sciq": "sciq_mc", "rte": "rte_mc", "qqp": "qqp_mc"}

_PER_FORMAT_DATASETS = [name for name, task in TASKS.items() if task not in ("mc", "chat") and name != "mnli"]
_PER_FORMAT_NAMES = [{value: key for key, value in RENAMED.items()}.get(name, name) for name in _PER_FORMAT_DATASETS]
_MULTIPLE_CHOICE_NAMES = [
    {value: key for key, value in MULTIPLE_CHOICE_RENAMED.items()}.get(name, name) for name in MULTIPLE_CHOICE
]
_SHOTS = r"(?:_(?P<shots>\d+)shots)?"
_BASE_ID = re.compile(rf"^(?:olmo1b_)?checkpoint-(?P<step>\d+)(?:_original(?:_hf)?)?{_SHOTS}$")
_MAIN_ID = re.compile(rf"^olmo1b_original_hf{_SHOTS}$")
_TUNED_ID = re.compile(
    r"^olmo1b_hf_(?:ckpt(?P<step>\d+)|main)_(?P<train>[a-z]+)_(?P<epochs>\d+)epoch_"
    rf"(?P<lr>\d+(?:\.\d+)?e-?\d+){_SHOTS}$"
)
ID_PATTERNS = (
    "olmo1b_checkpoint-STEP_original_hf[_Kshots], olmo1b_original_hf[_Kshots] (main), "
    "olmo1b_hf_ckptSTEP_TRAIN_Eepoch_LR[_Kshots] or olmo1b_hf_main_TRAIN_Eepoch_LR[_Kshots] "
    f"(TRAIN: {', '.join(TRAIN_DATASETS)})"
)


class PublishedTableError(ValueError):
    """A released table that cannot be read as the study's results."""


@dataclass(frozen=True)
class Checkpoint:
    """What a model id says: the base checkpoint, how it was tuned, and the shots."""

    step: int
    revision: str
    tuning: str
    train_dataset: str
    shots: int
    epochs: str = ""
    learning_rate: str = ""


def parse_model_id(model_id: str, default_shots: int = 0) -> Checkpoint:
    """A model id of the released tables; an id of no known pattern is a PublishedTableError."""
    if match := _MAIN_ID.match(model_id):
        return Checkpoint(MAIN_STEP, "main", "none", "none", _shots(match, default_shots))
    if match := _BASE_ID.match(model_id):
        step = int(match["step"])
        return Checkpoint(step, f"step{step}", "none", "none", _shots(match, default_shots))
    match = _TUNED_ID.match(model_id)
    if match and match["train"] in TRAIN_DATASETS:
        step = int(match["step"]) if match["step"] else MAIN_STEP
        train = TRAIN_DATASETS[match["train"]]
        return Checkpoint(
            step,
            f"step{step}" if match["step"] else "main",
            "it" if train == "tulu_v2" else "sft",
            train,
            _shots(match, default_shots),
            match["epochs"],
            match["lr"],
        )
    raise PublishedTableError(f"unknown model id {model_id!r}; the study's ids are {ID_PATTERNS}")


def _shots(match: re.Match, default: int) -> int:
    return int(match["shots"]) if match["shots"] else default


def parse_eval_dataset(name: str, multiple_choice: bool = False) -> tuple[str, str]:
    """(catalogue name, prompt format) of an eval-dataset column value."""
    if multiple_choice:
        dataset = MULTIPLE_CHOICE_RENAMED.get(name, name)
        if dataset not in MULTIPLE_CHOICE:
            raise PublishedTableError(
                f"unknown multiple-choice dataset {name!r}; known: {', '.join(_MULTIPLE_CHOICE_NAMES)}"
            )
        return dataset, "default"
    dataset, prompt_format = name, "default"
    for suffix, suffix_format in FORMAT_SUFFIXES.items():
        if name.endswith(suffix):
            dataset, prompt_format = name[: -len(suffix)], suffix_format
    dataset = RENAMED.get(dataset, dataset)
    if dataset.startswith("llmbar_"):
        dataset = dataset.lower()
    if dataset not in _PER_FORMAT_DATASETS:
        raise PublishedTableError(
            f"unknown eval dataset {name!r}; known: {', '.join(_PER_FORMAT_NAMES)}, each "
            f"optionally with the suffix {' or '.join(FORMAT_SUFFIXES)}"
        )
    return dataset, prompt_format


def relation(train_dataset: str, eval_dataset: str) -> str:
    """``base`` for untuned rows; else in-domain, out-of-domain (same task) or cross-task."""
    if train_dataset == "none":
        return "base"
    if eval_dataset == train_dataset or eval_dataset in IN_DOMAIN.get(train_dataset, ()):
        return "in-domain"
    return "out-of-domain" if TASKS[train_dataset] == TASKS[eval_dataset] else "cross-task"


def metric(eval_dataset: str) -> str:
    return "rougeL" if TASKS[eval_dataset] in GENERATION_TASKS else "accuracy"
