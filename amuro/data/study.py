"""Catalogue entries for the datasets of the Amuro & Char study (Sun & Dredze, arXiv 2408.06663).

Hub ids, configs, splits and columns follow each dataset's card on the Hugging Face hub. The ``test`` role
is the labelled split that is scored: where a test split hides its labels (GLUE, HellaSwag, TweetQA) or
there is none (BoolQ, Social IQa) the validation split is scored instead. The multiple-choice suites are
in-domain for instruction tuning (the study's learned-in-pre-training group after Tulu). Datasets published
with a loading script, which
current ``datasets`` releases no longer run, are read from the hub's parquet export or a converted branch.
Every hub entry can also be read offline from a local copy (see ``amuro.data.sources``). Entries whose commit
could be looked up are pinned to it (``revision``); docs/datasets.md lists which are and which are not.
"""

from __future__ import annotations

import re

from amuro.data.registry import register
from amuro.data.rows import register_preprocessor
from amuro.data.spec import PARQUET_EXPORT, DatasetSpec

NLI_LABELS = ("entailment", "neutral", "contradiction")
YES_NO = ("yes", "no")
GLUE = "nyu-mll/glue"
STSB_THRESHOLD = 3.5
TULU_FRACTION = 0.05

# Pinned commits of the hub repositories (the parquet export's own commit for Social IQa).
GLUE_COMMIT = "bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c"
ARC_COMMIT = "210d026faf9955653af8916fad021475a3f00453"
SCIQ_COMMIT = "2c94ad3e1aafab77146f384e23536f97a4849815"
OPENBOOKQA_COMMIT = "388097ea7776314e93a529163e0fea805b8a6454"
BOOLQ_COMMIT = "35b264d03638db9f4ce671b711558bf7ff0f80d5"
PAWS_COMMIT = "161ece9501cf0a11f3e48bd356eaa82de46d6a09"
SOCIALIQA_EXPORT_COMMIT = "537a2ec8ec565adc0b70b70752893e59e024df26"
TULU_V2_COMMIT = "6248b175d2ccb5ec7c4aeb22e6d8ee3b21b2c752"

TRAIN_VALID_TEST = {"train": "train", "validation": "validation", "test": "test"}
SCORE_VALIDATION = {"train": "train", "validation": "validation", "test": "validation"}


def _hub(name: str, task: str, path: str, **settings) -> DatasetSpec:
    return register(DatasetSpec(name=name, task=task, source="hub", path=path, **settings))


# --- summary generation (ROUGE-L) ---------------------------------------------------------------------

_hub(
    "xsum",
    "summary",
    "EdinburghNLP/xsum",
    revision=PARQUET_EXPORT,
    splits=TRAIN_VALID_TEST,
    fields={"document": "document", "target": "summary", "id": "id"},
    trainable=True,
    preprocess="drop_blank_rows",
    description="BBC articles with a one-sentence summary (XSum)",
    notes="rows with an empty document or summary are left out",
)
_hub(
    "xlsum",
    "summary",
    "csebuetnlp/xlsum",
    config="english",
    revision=PARQUET_EXPORT,
    splits=TRAIN_VALID_TEST,
    fields={"document": "text", "target": "summary", "id": "id"},
    in_domain_of=("xsum",),
    preprocess="drop_blank_rows",
    description="XL-Sum English: BBC articles and their summaries (in-domain for XSum)",
)
_hub(
    "cnn_dailymail",
    "summary",
    "abisee/cnn_dailymail",
    config="3.0.0",
    splits=TRAIN_VALID_TEST,
    fields={"document": "article", "target": "highlights", "id": "id"},
    description="CNN/Daily Mail articles and their highlights",
)

# --- question generation (ROUGE-L) --------------------------------------------------------------------

_hub(
    "socialiqa",
    "qgen",
    "allenai/social_i_qa",
    revision=SOCIALIQA_EXPORT_COMMIT,
    parquet_export=True,
    splits=SCORE_VALIDATION,
    fields={"context": "context", "answer": "answer", "target": "question"},
    trainable=True,
    preprocess="socialiqa_answer",
    description="Social IQa: a situation and its correct answer -> the question",
    notes="the correct answer is answerA/B/C picked by label (1-3); Social IQa publishes no test split, so "
    "the validation split is scored; read from the parquet export (the repository holds a loading script)",
)
_hub(
    "sciq",
    "qgen",
    "allenai/sciq",
    revision=SCIQ_COMMIT,
    splits=TRAIN_VALID_TEST,
    fields={"context": "support", "answer": "correct_answer", "target": "question"},
    preprocess="sciq_with_support",
    description="SciQ: a science paragraph and an answer -> the question",
    notes="questions without a support paragraph are left out",
)
_hub(
    "tweetqa",
    "qgen",
    "ucsbnlp/tweet_qa",
    splits=SCORE_VALIDATION,
    fields={"context": "Tweet", "answer": "Answer.0", "target": "Question", "id": "qid"},
    description="TweetQA: a tweet and an answer -> the question",
    notes="the answer is the first of the listed answers; the test split's answers are hidden, so the "
    "validation split is scored",
)

# --- natural language inference (accuracy) ------------------------------------------------------------

_NLI_FIELDS = {"premise": "premise", "hypothesis": "hypothesis", "label": "label", "id": "idx"}
_NLI_MAP = {"0": "entailment", "1": "neutral", "2": "contradiction"}

_hub(
    "mnli",
    "nli",
    GLUE,
    revision=GLUE_COMMIT,
    config="mnli",
    splits={"train": "train", "validation": "validation_matched"},
    fields=_NLI_FIELDS,
    labels=NLI_LABELS,
    label_map=_NLI_MAP,
    trainable=True,
    description="MultiNLI training set (scored through mnli_matched and mnli_mismatched)",
)
_hub(
    "mnli_matched",
    "nli",
    GLUE,
    revision=GLUE_COMMIT,
    config="mnli",
    splits={"train": "train", "validation": "validation_matched", "test": "validation_matched"},
    fields=_NLI_FIELDS,
    labels=NLI_LABELS,
    label_map=_NLI_MAP,
    in_domain_of=("mnli",),
    description="MultiNLI validation, genres seen in training",
    notes="GLUE hides MNLI test labels; the matched validation split is scored",
)
_hub(
    "mnli_mismatched",
    "nli",
    GLUE,
    revision=GLUE_COMMIT,
    config="mnli",
    splits={"train": "train", "validation": "validation_mismatched", "test": "validation_mismatched"},
    fields=_NLI_FIELDS,
    labels=NLI_LABELS,
    label_map=_NLI_MAP,
    in_domain_of=("mnli",),
    description="MultiNLI validation, genres not seen in training",
    notes="GLUE hides MNLI test labels; the mismatched validation split is scored",
)
_hub(
    "rte",
    "nli",
    GLUE,
    revision=GLUE_COMMIT,
    config="rte",
    splits=SCORE_VALIDATION,
    fields={"premise": "sentence1", "hypothesis": "sentence2", "label": "label", "id": "idx"},
    labels=("entailment", "contradiction"),
    label_map={"0": "entailment", "1": "contradiction"},
    description="RTE: two-way entailment",
    notes="RTE has two classes (0 entailment, 1 not_entailment); not_entailment is scored as the word "
    "'contradiction', so a three-way NLI model chooses between 'entailment' and 'contradiction' "
    "('neutral' is not offered); GLUE hides test labels, so validation is scored",
)
_hub(
    "gpt3nli",
    "nli",
    "pietrolesci/gpt3_nli",
    splits={"test": "train"},
    fields={"premise": "text_a", "hypothesis": "text_b", "label": "label", "id": "guid"},
    labels=NLI_LABELS,
    label_map=_NLI_MAP,
    description="NLI pairs written by GPT-3 (single split, scored whole)",
    notes="the dataset has one split; it has no training role, so demonstrations must come elsewhere",
)

# --- paraphrase detection (accuracy) ------------------------------------------------------------------

_YES_NO_MAP = {"0": "no", "1": "yes"}

_hub(
    "paws",
    "paraphrase",
    "google-research-datasets/paws",
    config="labeled_final",
    revision=PAWS_COMMIT,
    splits=TRAIN_VALID_TEST,
    fields={"s1": "sentence1", "s2": "sentence2", "label": "label", "id": "id"},
    labels=YES_NO,
    label_map=_YES_NO_MAP,
    trainable=True,
    description="PAWS (labeled_final): word-swapped sentence pairs, paraphrase or not",
)
_hub(
    "qqp",
    "paraphrase",
    GLUE,
    revision=GLUE_COMMIT,
    config="qqp",
    splits=SCORE_VALIDATION,
    fields={"s1": "question1", "s2": "question2", "label": "label", "id": "idx"},
    labels=YES_NO,
    label_map=_YES_NO_MAP,
    description="Quora question pairs: duplicate or not",
    notes="GLUE's QQP test labels are hidden (-1); the validation split is scored",
)
_hub(
    "stsb",
    "paraphrase",
    GLUE,
    revision=GLUE_COMMIT,
    config="stsb",
    splits=SCORE_VALIDATION,
    fields={"s1": "sentence1", "s2": "sentence2", "label": "similar", "id": "idx"},
    labels=YES_NO,
    preprocess="stsb_similarity",
    description="STS-B sentence pairs; a similarity above 3.5 (of 5) counts as a paraphrase",
    notes=f"label 'yes' when the similarity score > {STSB_THRESHOLD}; GLUE's STS-B test scores are hidden "
    f"(-1), so the validation split is scored",
)

# --- multiple choice, scored by log-likelihood ranking (accuracy) -----------------------------------------

_QUESTION_ANSWER = {"default": "Question: {question}\nAnswer:"}
_INSTRUCTION_TUNING = ("tulu_v2",)

for _name, _config, _label in (
    ("arc_easy", "ARC-Easy", "ARC Easy"),
    ("arc_challenge", "ARC-Challenge", "ARC Challenge"),
):
    _hub(
        _name,
        "mc",
        "allenai/ai2_arc",
        config=_config,
        revision=ARC_COMMIT,
        splits=TRAIN_VALID_TEST,
        fields={
            "question": "question",
            "choices": "choices.text",
            "choice_labels": "choices.label",
            "gold_label": "answerKey",
            "id": "id",
        },
        templates=_QUESTION_ANSWER,
        in_domain_of=_INSTRUCTION_TUNING,
        description=f"{_label}: grade-school science questions",
    )
_hub(
    "boolq",
    "mc",
    "google/boolq",
    revision=BOOLQ_COMMIT,
    splits=SCORE_VALIDATION,
    fields={"passage": "passage", "question": "question", "gold": "answer"},
    labels=("no", "yes"),
    templates={"default": "{passage}\nQuestion: {question}?\nAnswer:"},
    in_domain_of=_INSTRUCTION_TUNING,
    description="BoolQ: yes/no questions about a passage",
    notes="BoolQ has no test split; the validation split is scored",
)
_hub(
    "hellaswag",
    "mc",
    "Rowan/hellaswag",
    revision=PARQUET_EXPORT,
    splits=SCORE_VALIDATION,
    fields={"query": "query", "choices": "endings", "gold": "label"},
    preprocess="hellaswag",
    templates={"default": "{query}"},
    in_domain_of=_INSTRUCTION_TUNING,
    description="HellaSwag: the most plausible continuation of an activity description",
    notes="test labels are hidden, so the validation split is scored; context and endings are cleaned "
    "as in lm-evaluation-harness",
)
_hub(
    "openbookqa",
    "mc",
    "allenai/openbookqa",
    config="main",
    revision=OPENBOOKQA_COMMIT,
    splits=TRAIN_VALID_TEST,
    fields={
        "question": "question_stem",
        "choices": "choices.text",
        "choice_labels": "choices.label",
        "gold_label": "answerKey",
        "id": "id",
    },
    templates=_QUESTION_ANSWER,
    in_domain_of=_INSTRUCTION_TUNING,
    description="OpenBookQA: elementary science questions",
)
_hub(
    "sciq_mc",
    "mc",
    "allenai/sciq",
    revision=SCIQ_COMMIT,
    splits=TRAIN_VALID_TEST,
    fields={
        "question": "question_with_support",
        "choices": "correct_answer,distractor1,distractor2,distractor3",
        "gold_text": "correct_answer",
    },
    preprocess="sciq_question_with_support",
    templates={"default": "{question}\nAnswer:"},
    in_domain_of=_INSTRUCTION_TUNING,
    description="SciQ as four-way multiple choice",
    notes="the support paragraph, when there is one, precedes the question",
)

# --- instruction tuning -------------------------------------------------------------------------------

_hub(
    "tulu_v2",
    "chat",
    "allenai/tulu-v2-sft-mixture",
    revision=TULU_V2_COMMIT,
    splits={"train": "train"},
    fields={"messages": "messages", "id": "id"},
    trainable=True,
    train_size=None,
    subsample=TULU_FRACTION,
    description="Tulu v2 SFT mixture: chat conversations for instruction tuning",
    notes=f"a seeded {TULU_FRACTION:.0%} sample of the mixture is used, as in the study",
)


# --- row preprocessors ----------------------------------------------------------------------------------


@register_preprocessor("socialiqa_answer")
def socialiqa_answer(row: dict) -> dict:
    """The correct answer's text: ``label`` 1, 2, 3 picks answerA, answerB, answerC."""
    label = str(row.get("label", "")).strip()
    row["answer"] = row.get(f"answer{'ABC'[int(label) - 1]}") if label in ("1", "2", "3") else None
    return row


@register_preprocessor("stsb_similarity")
def stsb_similarity(row: dict) -> dict:
    """``similar``: yes above the threshold; hidden scores (negative) stay as they are for the guard."""
    score = row.get("label")
    if isinstance(score, (int, float)) and score >= 0:
        row["similar"] = "yes" if score > STSB_THRESHOLD else "no"
    else:
        row["similar"] = score
    return row


@register_preprocessor("sciq_with_support")
def sciq_with_support(row: dict) -> dict | None:
    return row if str(row.get("support") or "").strip() else None


@register_preprocessor("sciq_question_with_support")
def sciq_question_with_support(row: dict) -> dict:
    support = str(row.get("support") or "").strip()
    question = str(row.get("question") or "").strip()
    if not question:
        row["question_with_support"] = ""
    else:
        row["question_with_support"] = f"{support}\nQuestion: {question}" if support else f"Question: {question}"
    return row


def _hellaswag_text(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


@register_preprocessor("hellaswag")
def hellaswag(row: dict) -> dict:
    """lm-evaluation-harness's HellaSwag query: ``activity: ctx_a Ctx_b``, cleaned of WikiHow markup."""
    ctx = f"{row.get('ctx_a', '')} {str(row.get('ctx_b', '')).capitalize()}"
    row["query"] = _hellaswag_text(f"{row.get('activity_label', '')}: {ctx}")
    row["endings"] = [_hellaswag_text(str(e)) for e in row.get("endings") or []]
    return row
