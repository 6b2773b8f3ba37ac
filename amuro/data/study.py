"""The datasets of the Amuro & Char study (Sun & Dredze, arXiv 2408.06663), declared in ``study_catalogue.yaml``
(the format of a ``--dataset-spec`` file; its comments say how splits, parquet exports and pins are chosen), and
the row preprocessors those entries name. Every hub entry can also be read offline from a local copy (see
``amuro.data.sources``)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from amuro.data.registry import register
from amuro.data.rows import register_preprocessor
from amuro.data.spec import DatasetSpec

CATALOGUE_FILE = Path(__file__).with_name("study_catalogue.yaml")
STSB_THRESHOLD = 3.5


def _register_catalogue() -> None:
    for entry in yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8"))["datasets"]:
        values = {key: tuple(value) if isinstance(value, list) else value for key, value in entry.items()}
        register(DatasetSpec(source="hub", **values))


_register_catalogue()


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
