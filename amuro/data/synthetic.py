"""The synthetic suite: a small seeded world, its four tasks, their out-of-domain twins, and a corpus.

Two domains share one grammar but no content words: ``town`` (people, jobs, towns, pets, objects) is the
in-domain world the training sets and most of the pre-training corpus describe; ``realm`` (knights,
castles, beasts, relics) supplies the out-of-domain evaluation sets, with partly different sentence
patterns. The corpus holds biographies, stories with their gist, question-and-answer passages, event
notes and question-writing exercises laid out as the question-generation prompt, but never a labelled
inference or paraphrase judgement. As in the study, one in-domain task is thus learned in pre-training
(synth-qgen's base score rises across the checkpoints, as ARC's does for OLMo) while inference and
paraphrase are learned only by fine-tuning. A quarter of the passages put two spaces after full stops and
colons, as much real text does: a prompt that ends in a space (``### Question: ``) leaves the model after a
lone space token, and a model that never saw one before a word answers no such prompt, whatever it learned.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from amuro.data.formats import TEMPLATES, join
from amuro.data.spec import Example
from amuro.data.synthetic_world import DOMAINS, REALM, TOWN, Domain

SPLIT_SIZES = {"train": 2000, "validation": 200, "test": 300}


def _person(rng: random.Random, dom: Domain) -> tuple[str, dict[str, str]]:
    return rng.choice(dom.names), {a: rng.choice(attr.values) for a, attr in dom.attributes.items()}


def _state(rng: random.Random, dom: Domain, name: str, attr: str, value: str) -> str:
    return rng.choice(dom.attributes[attr].states).format(name=name, value=value)


def _other(rng: random.Random, values: tuple[str, ...], not_this: str) -> str:
    return rng.choice([v for v in values if v != not_this])


# --- NLI ---------------------------------------------------------------------------------------------


def _nli(rng: random.Random, dom: Domain, label: str) -> dict[str, str]:
    """A premise of two or three facts about one person; the hypothesis restates one (entailment), denies
    one (contradiction) or claims a fact the premise does not mention (neutral)."""
    name, facts = _person(rng, dom)
    attrs = list(dom.attributes)
    rng.shuffle(attrs)
    shown, hidden = attrs[: rng.choice((2, 3))], attrs[3]
    premise = " ".join(_state(rng, dom, name, a, facts[a]) for a in shown)
    target_attr = rng.choice(shown)
    if label == "entailment":
        hypothesis = _state(rng, dom, name, target_attr, facts[target_attr])
    elif label == "contradiction":
        hypothesis = dom.attributes[target_attr].negation.format(name=name, value=facts[target_attr])
    else:
        hypothesis = _state(rng, dom, name, hidden, rng.choice(dom.attributes[hidden].values))
    return {"premise": premise, "hypothesis": hypothesis, "label": label}


# --- paraphrase ----------------------------------------------------------------------------------------


def _event_parts(rng: random.Random, dom: Domain) -> dict[str, str]:
    giver, receiver = rng.sample(dom.names, 2)
    return {
        "giver": giver,
        "receiver": receiver,
        "verb": rng.choice(dom.transfer),
        "color": rng.choice(dom.colors),
        "good": rng.choice(dom.goods),
        "place": rng.choice(dom.places),
        "day": rng.choice(dom.days),
    }


PARTICIPLES = {"gave": "given"}  # the other verbs of giving have participles equal to their past tense


def _say_event(p: dict[str, str], style: int, dom: Domain) -> str:
    on = "on" if dom is TOWN else "at"
    styles = (
        "{On} {day}, {giver} {verb} a {color} {good} to {receiver} in {place}.",
        "{giver} {verb} {receiver} a {color} {good} in {place} {on} {day}.",
        "In {place}, {giver} {verb} a {color} {good} to {receiver} {on} {day}.",
        "A {color} {good} was {participle} to {receiver} by {giver} in {place} {on} {day}.",
    )
    return styles[style].format(On=on.capitalize(), on=on, participle=PARTICIPLES.get(p["verb"], p["verb"]), **p)


def _paraphrase(rng: random.Random, dom: Domain, label: str) -> dict[str, str]:
    parts = _event_parts(rng, dom)
    first, second = rng.sample(range(4), 2)
    s1 = _say_event(parts, first, dom)
    if label == "yes":
        s2 = _say_event(parts, second, dom)
    else:
        changed = dict(parts)
        change = rng.choice(("swap", "color", "good", "place", "day"))
        if change == "swap":
            changed["giver"], changed["receiver"] = parts["receiver"], parts["giver"]
        elif change == "color":
            changed["color"] = _other(rng, dom.colors, parts["color"])
        elif change == "good":
            changed["good"] = _other(rng, dom.goods, parts["good"])
        elif change == "place":
            changed["place"] = _other(rng, dom.places, parts["place"])
        else:
            changed["day"] = _other(rng, dom.days, parts["day"])
        s2 = _say_event(changed, second if rng.random() < 0.7 else first, dom)
    return {"s1": s1, "s2": s2, "label": label}


# --- stories: summaries, questions and the corpus -----------------------------------------------------------


def _story(rng: random.Random, dom: Domain) -> tuple[list[str], str, list[str]]:
    """A short story, its one-sentence gist, and its key facts as a highlight list."""
    name, facts = _person(rng, dom)
    first_attr = list(dom.attributes)[0]
    friend = _other(rng, dom.names, name)
    place = rng.choice(dom.places)
    day = rng.choice(dom.days)
    color, good = rng.choice(dom.colors), rng.choice(dom.goods)
    on = "On" if dom is TOWN else "At"
    role = facts[first_attr]
    sentences = [
        _state(rng, dom, name, first_attr, role),
        f"{on} {day}, {name} {dom.travel} {place}.",
        rng.choice(dom.weather),
        f"There, {name} bought a {color} {good} at the market.",
        f"Later, {name} {dom.meal} {friend}.",
    ]
    if rng.random() < 0.5:
        extra_attr = rng.choice(list(dom.attributes)[1:])
        sentences.insert(1, _state(rng, dom, name, extra_attr, facts[extra_attr]))
    gist = f"The {role} {name} {dom.travel} {place}, bought a {color} {good} and {dom.meal} {friend}."
    highlights = [
        f"{name} {dom.travel} {place} {on.lower()} {day}.",
        f"{name} bought a {color} {good}.",
        f"{name} {dom.meal} {friend}.",
    ]
    return sentences, gist, highlights


def _summary(rng: random.Random, dom: Domain, label: str) -> dict[str, str]:
    sentences, gist, highlights = _story(rng, dom)
    target = gist if dom is TOWN else " ".join(highlights)
    return {"document": " ".join(sentences), "summary": target}


def _qgen(rng: random.Random, dom: Domain, label: str) -> dict[str, str]:
    name, facts = _person(rng, dom)
    attrs = list(dom.attributes)
    rng.shuffle(attrs)
    shown = attrs[:3]
    asked = rng.choice(shown)
    sentences = [_state(rng, dom, name, a, facts[a]) for a in shown]
    if dom is REALM:
        sentences.append(rng.choice(dom.weather))
        rng.shuffle(sentences)
    return {
        "context": " ".join(sentences),
        "answer": facts[asked],
        "question": dom.attributes[asked].question.format(name=name),
    }


def _articles(text: str) -> str:
    return re.sub(r"\b([Aa]) ([aeiouAEIOU])", r"\1n \2", text)


def _tidy(row: dict[str, str]) -> dict[str, str]:
    return {key: _articles(value) for key, value in row.items()}


GENERATORS = {
    "nli": (_nli, ("entailment", "neutral", "contradiction"), ("premise", "hypothesis"), "label"),
    "paraphrase": (_paraphrase, ("yes", "no"), ("s1", "s2"), "label"),
    "summary": (_summary, (), ("document",), "summary"),
    "qgen": (_qgen, (), ("context", "answer"), "question"),
}


def generate(task: str, domain: str, split: str, seed: int = 0) -> tuple[Example, ...]:
    """A deterministic split; no rendered item appears in two splits of the same (task, domain)."""
    try:
        return _splits(task, domain, seed)[split]
    except KeyError:
        raise KeyError(split) from None


@lru_cache(maxsize=32)
def _splits(task: str, domain: str, seed: int) -> dict[str, tuple[Example, ...]]:
    """Every split of one (task, domain), drawn in one pass from one seeded generator."""
    make, labels, slots, target_field = GENERATORS[task]
    dom = DOMAINS[domain]
    rng = random.Random(f"{task}/{domain}/{seed}")
    seen: set[tuple[str, ...]] = set()
    out: dict[str, tuple[Example, ...]] = {}
    for role, size in SPLIT_SIZES.items():
        items: list[Example] = []
        while len(items) < size:
            label = labels[len(items) % len(labels)] if labels else ""
            row = _tidy(make(rng, dom, label))
            key = tuple(row[s] for s in slots)
            if key in seen:
                continue
            seen.add(key)
            items.append(
                Example(
                    item_id=f"{task}-{domain}-{role}-{len(items):05d}",
                    slots={s: row[s] for s in slots},
                    target=row[target_field],
                    choices=labels,
                    gold=labels.index(label) if labels else None,
                )
            )
        rng.shuffle(items)
        out[role] = tuple(items)
    return out


def _biography(rng: random.Random, dom: Domain) -> str:
    name, facts = _person(rng, dom)
    return " ".join(_state(rng, dom, name, a, v) for a, v in facts.items())


def _story_with_gist(rng: random.Random, dom: Domain) -> str:
    sentences, gist, _ = _story(rng, dom)
    lead = rng.choice(("In short:", "To sum up,", "Summary:", "In brief,"))
    return " ".join(sentences) + f"\n{lead} {gist}"


def _question_and_answer(rng: random.Random, dom: Domain) -> str:
    item = _qgen(rng, dom, "")
    return f"{item['context']}\nQuestion: {item['question']}\nAnswer: {item['answer']}."


def _question_exercise(rng: random.Random, dom: Domain) -> str:
    """Facts and an answer, then the question they belong to, laid out as the question-generation prompt."""
    item = _qgen(rng, dom, "")
    return join(TEMPLATES["qgen"]["default"].format(**item), item["question"])


def _event_note(rng: random.Random, dom: Domain) -> str:
    return _say_event(_event_parts(rng, dom), rng.randrange(4), dom) + " " + rng.choice(dom.weather)


# Passage kinds and their shares of the corpus.
PASSAGES = (
    (_biography, 0.3),
    (_story_with_gist, 0.25),
    (_question_and_answer, 0.125),
    (_question_exercise, 0.125),
    (_event_note, 0.2),
)
TWO_SPACED_SHARE = 0.25


def _two_spaced(text: str) -> str:
    return re.sub(r"([.:]) ", r"\1  ", text)


def corpus(seed: int = 0, passages: int = 12000) -> list[str]:
    """Natural text about both worlds (the module docstring lists what it holds and why)."""
    rng = random.Random(f"corpus/{seed}")
    out: list[str] = []
    for _ in range(passages):
        dom = TOWN if rng.random() < 0.8 else REALM
        make = rng.choices([make for make, _ in PASSAGES], [share for _, share in PASSAGES])[0]
        text = _articles(make(rng, dom))
        out.append(_two_spaced(text) if rng.random() < TWO_SPACED_SHARE else text)
    return out
