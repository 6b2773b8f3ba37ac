"""The synthetic suite: deterministic generators, disjoint splits, balanced labels, and what the corpus holds."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from amuro.data import formats_for, get, load_examples, render, synthetic
from amuro.data.formats import TEMPLATES
from amuro.data.synthetic import GENERATORS, SPLIT_SIZES

TASK_DOMAINS = [(task, domain) for task in GENERATORS for domain in synthetic.DOMAINS]


def _fresh(task: str, domain: str, split: str, seed: int = 0):
    return synthetic._splits.__wrapped__(task, domain, seed)[split]


@pytest.mark.parametrize("task", list(GENERATORS))
def test_same_seed_same_items(task):
    first, second = _fresh(task, "town", "validation"), _fresh(task, "town", "validation")
    assert first == second
    assert _fresh(task, "town", "validation", seed=1) != first


@pytest.mark.parametrize("task, domain", TASK_DOMAINS)
def test_splits_share_no_rendered_item(task, domain):
    spec = get(f"synth-{task}" + ("" if domain == "town" else "-ood"))
    rendered = {}
    for split in SPLIT_SIZES:
        items = synthetic.generate(task, domain, split)
        assert len(items) == SPLIT_SIZES[split]
        rendered[split] = {render(spec, example, "io") for example in items}
        assert len(rendered[split]) == len(items)
    assert not rendered["train"] & rendered["validation"]
    assert not rendered["train"] & rendered["test"]
    assert not rendered["validation"] & rendered["test"]


@pytest.mark.parametrize("task", [t for t, (_, labels, _, _) in GENERATORS.items() if labels])
@pytest.mark.parametrize("domain", list(synthetic.DOMAINS))
def test_labels_are_balanced(task, domain):
    labels = GENERATORS[task][1]
    for split, size in SPLIT_SIZES.items():
        counts = Counter(example.target for example in synthetic.generate(task, domain, split))
        assert set(counts) == set(labels)
        assert max(counts.values()) - min(counts.values()) <= 1, (split, counts)
        assert all(
            example.choices[example.gold] == example.target for example in synthetic.generate(task, domain, split)
        )


def test_catalogue_entries_render_every_format():
    for task in GENERATORS:
        spec = get(f"synth-{task}")
        example = load_examples(spec, "test", limit=1)[0]
        for fmt in formats_for(spec):
            assert render(spec, example, fmt).strip()


def test_training_subsample_is_seeded():
    import dataclasses

    spec = dataclasses.replace(get("synth-nli"), train_size=50)
    first = load_examples(spec, "train")
    assert len(first) == 50 and first == load_examples(spec, "train")
    assert first != list(synthetic.generate("nli", "town", "train"))[:50]


@pytest.mark.parametrize("domain", list(synthetic.DOMAINS))
def test_passive_paraphrases_use_the_participle(domain):
    passives = [
        sentence.split(" was ")[1].split()[0]
        for example in synthetic.generate("paraphrase", domain, "train")
        for sentence in example.slots.values()
        if " was " in sentence
    ]
    assert passives
    assert "gave" not in passives
    assert domain != "town" or "given" in passives


def _corpus():
    return synthetic.corpus(passages=2000)


def test_corpus_is_seeded():
    assert _corpus() == _corpus() and synthetic.corpus(seed=1, passages=2000) != _corpus()


def test_corpus_holds_question_exercises_laid_out_as_the_question_generation_prompt():
    prompt = re.escape(TEMPLATES["qgen"]["default"])
    prompt = prompt.replace(re.escape("{context}"), "(.+)").replace(re.escape("{answer}"), "(.+)")
    exercises = [passage.replace("  ", " ") for passage in _corpus() if "### Question:" in passage]
    assert len(exercises) > 150
    for exercise in exercises:
        context, answer, question = re.fullmatch(prompt + r"(.+\?)", exercise).groups()
        named = re.findall(r" ([A-Z][a-z]+)", question)
        assert answer in context and named and all(name in context for name in named)


def test_corpus_never_holds_an_inference_or_paraphrase_judgement():
    words = {word for task in ("nli", "paraphrase") for word in GENERATORS[task][1]}
    for passage in _corpus():
        assert "Inference" not in passage and "Paraphrase" not in passage
        assert not words & set(re.findall(r"[a-z]+", passage)), passage


def test_some_passages_put_two_spaces_after_full_stops_and_colons():
    passages = _corpus()
    two_spaced = [passage for passage in passages if ".  " in passage or ":  " in passage]
    assert 0.15 < len(two_spaced) / len(passages) < 0.35
