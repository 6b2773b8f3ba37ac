"""The study's catalogue: each dataset as the study's code prompted and scored it (``--protocol study``).

``for_protocol(spec, "study")`` returns the spec with the study's templates (verbatim, quirks included,
copied from ``open_instruct/format_generalization.py``), prompt formats and scored splits; under ``amuro``
the spec is returned as it is. The names stay those of the catalogue, so relations and pairing are unchanged.
"""

from __future__ import annotations

import dataclasses

from amuro.core.protocol import protocol
from amuro.data.formats import TEMPLATE_VERSIONS
from amuro.data.spec import DatasetSpec

# Result version of the study's verbatim templates and splits below (beside the family's TEMPLATE_VERSIONS).
STUDY_TEMPLATE_VERSION = 1
_QUESTION = "\n ### Question: "
_GENERATE = "Generate a suitable question: "
_SOCIAL_ANSWERS = "Answer A: {answerA} Answer B: {answerB}Answer C: {answerC}"
_PARAPHRASE_INSTRUCT = (
    "Let\u2019s compare the two sentences: Sentence_1: {s1} Sentence_2: {s2} Are they paraphrasing?: "
)
_WITHOUT_IO = ("default", "instruct")
_NLI_WORDS = ("entailment", "neutral", "contradiction")

STUDY_SPECS: dict[str, dict[str, object]] = {
    "socialiqa": {
        "fields": {"target": "question"},
        "templates": {
            "default": "### Input: {context}\n ### Answer: " + _SOCIAL_ANSWERS + _QUESTION,
            "instruct": "Given the context: {context} And the answer: " + _SOCIAL_ANSWERS + _GENERATE,
            "io": "{context}{answerA}{answerB}{answerC}",
        },
    },
    "sciq": {
        "fields": {"target": "question"},
        "formats": _WITHOUT_IO,
        "templates": {
            "default": "### Input: {support}\n ### Answer: Answer A: {correct_answer} Answer B: {distractor1} "
            "Answer C: {distractor2}Answer D: {distractor3}" + _QUESTION,
            "instruct": "Given the context: {support} And the answer: Answer A: {correct_answer} Answer B: "
            "{distractor1}Answer C: {distractor2}Answer D: {distractor3}" + _GENERATE,
        },
    },
    "tweetqa": {
        "formats": _WITHOUT_IO,
        "splits": {"train": "train", "test": "train"},
        "templates": {"instruct": "Given the context: {context} And the answer: {answer}" + _GENERATE},
    },
    "cnn_dailymail": {"formats": _WITHOUT_IO},
    "rte": {
        "formats": _WITHOUT_IO,
        "splits": {"train": "train", "test": "train"},
        "labels": _NLI_WORDS,
        "label_map": {"0": "entailment", "1": "neutral"},
    },
    "gpt3nli": {"formats": _WITHOUT_IO},
    "paws": {"templates": {"instruct": _PARAPHRASE_INSTRUCT}},
    "qqp": {"formats": _WITHOUT_IO, "templates": {"instruct": _PARAPHRASE_INSTRUCT}},
    "stsb": {"formats": _WITHOUT_IO, "templates": {"instruct": _PARAPHRASE_INSTRUCT}},
    **{
        name: {"splits": {"train": "train", "validation": "validation", "test": "validation"}}
        for name in ("arc_easy", "arc_challenge", "openbookqa", "sciq_mc")
    },
}


def rendering_version(task: str, name: str) -> str:
    """The rendering version of a task family's cells under a protocol: ``nli-1``, ``nli-1+study-1``."""
    version = f"{task}-{TEMPLATE_VERSIONS.get(task, 1)}"
    return f"{version}+study-{STUDY_TEMPLATE_VERSION}" if protocol(name).templates == "verbatim" else version


def for_protocol(spec: DatasetSpec, name: str) -> DatasetSpec:
    """The spec as the protocol prompts and scores it (the study's verbatim templates and splits)."""
    if protocol(name).templates != "verbatim" or not isinstance(spec, DatasetSpec) or spec.name not in STUDY_SPECS:
        return spec
    changes = dict(STUDY_SPECS[spec.name])
    if "fields" in changes and "id" in spec.fields:
        changes["fields"] = {**changes["fields"], "id": spec.fields["id"]}
    if "templates" in changes:
        changes["templates"] = {**spec.templates, **changes["templates"]}
    return dataclasses.replace(spec, **changes)
