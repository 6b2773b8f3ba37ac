"""The study protocol's scoring and fine-tuning: label candidates, ROUGE-L, the interval midpoint, subsets,
tokenization and loss weights, each as the study's code computes it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from amuro.core.protocol import protocol
from amuro.core.settings import EvalSettings, FinetuneSettings, SweepSettings
from amuro.data import get, load_examples, render
from amuro.data.loading import sample_size, shuffled
from amuro.data.protocol import for_protocol
from amuro.scoring.cell_scoring import score_cell
from amuro.scoring.label_tokens import every_subtoken, first_tokens
from amuro.scoring.metrics import bootstrap, rouge_l
from amuro.training.features import IGNORE, study_chat_features, study_completion_features
from amuro.training.trainer import per_example_loss

ROOT = Path(__file__).resolve().parents[1]


# --- classification candidates, ROUGE-L, the interval midpoint ------------------------------------------------


def test_label_candidates_are_every_subtoken_of_each_word_with_and_without_a_space(small_series):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        Path(small_series) / sorted(p.name for p in Path(small_series).iterdir() if p.is_dir())[0]
    )
    words = ("entailment", "neutral", "contradiction")
    force_words = ["entailment", "neutral", "contradiction", " entailment", " neutral", " contradiction"]
    candidates, owners = every_subtoken(tokenizer, words)
    assert candidates == np.concatenate(tokenizer(force_words).input_ids).tolist()
    lengths = [len(ids) for ids in tokenizer(force_words).input_ids]
    assert owners == [n % 3 for n, length in enumerate(lengths) for _ in range(length)]
    assert max(lengths) > 1 and len(candidates) > sum(len(t) for t in first_tokens(tokenizer, words))


def test_study_next_token_prediction_matches_the_studys_argmax(small_series):
    """eval/utils.get_next_word_predictions + convert_pred_ids, written out, on the same prompts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(small_series) / sorted(p.name for p in Path(small_series).iterdir() if p.is_dir())[-1]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    spec = for_protocol(get("synth-nli"), "study")
    items = load_examples(spec, "test")[:6]
    results = score_cell(model, tokenizer, spec, "default", [], items, EvalSettings(protocol="study"))
    force_words = ["entailment", "neutral", "contradiction", " entailment", " neutral", " contradiction"]
    unconcatenated = tokenizer(force_words).input_ids
    candidate_ids = np.concatenate(unconcatenated).tolist()
    owner = [index for index, ids in enumerate(unconcatenated) for _ in ids]
    for item, result in zip(items, results):
        ids = tokenizer([render(spec, item, "default")], return_tensors="pt").input_ids
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=ids).logits[:, -1, :], dim=-1)[:, candidate_ids]
        expected = force_words[owner[int(torch.argmax(probs, dim=-1))]]
        assert result.prediction == expected.strip()


def test_study_rouge_l_is_unstemmed_as_evaluate_computes_it():
    from rouge_score import rouge_scorer

    predictions, references = ["Why did Robin helps them?", "who wins"], ["Why did Robin help?", "who won game 3?"]
    unstemmed = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)  # evaluate's rouge.py, its default
    assert rouge_l(predictions, references, stemming=False) == [
        unstemmed.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)
    ]
    assert rouge_l(predictions, references, stemming=False)[0] < rouge_l(predictions, references)[0]
    assert protocol("study").rouge_stemming is False and protocol("amuro").rouge_stemming is True


def test_interval_midpoint_is_logged_beside_the_mean():
    estimate = bootstrap([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0], resamples=3000, seed=1)
    metrics = estimate.metrics()
    assert metrics["score_ci_mid"] == pytest.approx((estimate.ci_high - estimate.ci_low) / 2 + estimate.ci_low)
    assert metrics["score"] == pytest.approx(4 / 7)


# --- fine-tuning: subsets, tokenization, loss weights ----------------------------------------------------------


def test_study_subset_is_datasets_own_shuffle_select(tmp_path):
    rows = datasets.Dataset.from_dict({"row": list(range(300))})
    picked = rows.shuffle(seed=42).select(range(60))["row"]
    assert shuffled(300, "study")[:60] == picked
    assert shuffled(300, "amuro")[:60] != picked
    path = tmp_path / "train.jsonl"
    path.write_text("".join(f'{{"premise": "P{i}.", "hypothesis": "H{i}.", "label": "neutral"}}\n' for i in range(300)))
    spec = dataclasses.replace(
        get("synth-nli"), name="rows", source="local", path=str(path), splits={"train": "train"}, train_size=60
    )
    assert [e.slots["premise"] for e in load_examples(spec, "train", protocol="study")] == [f"P{i}." for i in picked]
    tulu = dataclasses.replace(spec, train_size=None, subsample=0.05)
    assert sample_size(tulu, "train", 59, "study") == 2 and sample_size(tulu, "train", 59, "amuro") == 3


class _WordTokenizer:
    """A whitespace tokenizer with the call signature the study's code uses (ids of words, plus EOS)."""

    eos_token = "</s>"

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def __call__(self, text, max_length=None, truncation=False, **_):
        ids = [self.vocab.setdefault(w, len(self.vocab)) for w in re.findall(r"</s>|\S+|\s(?=\S)", text)]
        return {"input_ids": ids[:max_length] if truncation and max_length else ids}


def test_study_tokenization_is_one_string_with_the_prompt_masked_as_the_study_masks_it():
    tokenizer = _WordTokenizer()
    features = study_completion_features(tokenizer, "### Input: a b\n ### Summary: ", "c d", 64)
    whole = tokenizer("### Input: a b\n ### Summary: c d</s>")["input_ids"]
    masked = len(tokenizer("### Input: a b\n ### Summary:")["input_ids"])
    assert features["input_ids"] == whole
    assert features["labels"] == [IGNORE] * masked + whole[masked:]
    cut = study_completion_features(tokenizer, "### Input: a b\n ### Summary: ", "c d", 5)
    assert cut["input_ids"] == whole[:5] and all(label == IGNORE for label in cut["labels"])
    chat = study_chat_features(
        tokenizer, [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo"}], 64
    )
    text = "<|user|>\nhi\n<|assistant|>\nyo</s>"
    assert chat["input_ids"] == tokenizer(text)["input_ids"]
    prompt = len(tokenizer("<|user|>\nhi\n<|assistant|>\n")["input_ids"])
    assert chat["labels"][:prompt] == [IGNORE] * prompt and chat["labels"][prompt:] == chat["input_ids"][prompt:]


def test_each_example_weighs_the_same_in_the_study_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.tensor([[IGNORE, IGNORE, 3, 4, 5, 6], [IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, 7]])
    outputs = type("Out", (), {"logits": logits})()
    each = [torch.nn.functional.cross_entropy(logits[i, :-1], labels[i, 1:], ignore_index=IGNORE) for i in range(2)]
    assert float(per_example_loss(outputs, labels)) == pytest.approx(float((each[0] + each[1]) / 2))
    by_token = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=IGNORE
    )
    assert float(per_example_loss(outputs, labels)) != pytest.approx(float(by_token))
    alone = [
        float(per_example_loss(type("Out", (), {"logits": logits[i : i + 1]})(), labels[i : i + 1])) for i in range(2)
    ]
    assert alone == pytest.approx([float(e) for e in each])  # micro-batch 1: each example's own mean


def test_study_training_settings():
    study = FinetuneSettings(protocol="study", dataset="synth-nli").train
    assert (
        study.preset,
        study.batch_size,
        study.grad_accum,
        study.seed,
        study.epochs,
        study.lr,
        study.train_shots,
        study.max_length,
    ) == ("amuro-char", 1, 8, 42, 3, 2e-6, 0, 2048)
    assert FinetuneSettings(protocol="study").eval.protocol == "study"
    assert FinetuneSettings(protocol="study").key_settings()["protocol"] == "study"
    assert FinetuneSettings(protocol="study", dataset="xsum").train.lr == 2e-7
    assert FinetuneSettings(protocol="study", dataset="synth-instruct", train={"tuning": "it"}).train.epochs == 5
    amuro = FinetuneSettings(dataset="synth-nli").train
    assert (amuro.preset, amuro.batch_size, amuro.grad_accum, amuro.seed) == ("tiny", 4, 1, 0)
    assert FinetuneSettings(protocol="study", train={"seed": 3, "batch_size": 2}).train.seed == 3
    sweep = SweepSettings(eval={"protocol": "study"})
    assert (sweep.train.preset, sweep.train.seed) == ("amuro-char", 42)
    key = EvalSettings(protocol="study").cell_key_settings("generation")
    assert (key["protocol"], key["demos"], key["stop"]) == ("study", "first-k", "none")
