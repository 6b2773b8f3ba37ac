"""The synthetic suite's two domains, read from ``synthetic_world.yaml``: their people, attributes, places and
goods, and the sentence patterns that state them (``amuro.data.synthetic`` builds the tasks and the corpus from
them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Attribute:
    values: tuple[str, ...]
    states: tuple[str, ...]  # ways to state "{name} ... {value}"
    negation: str  # "{name} ... not ... {value}"
    question: str  # asks for the value


@dataclass(frozen=True)
class Domain:
    names: tuple[str, ...]
    attributes: dict[str, Attribute]
    places: tuple[str, ...]
    goods: tuple[str, ...]
    colors: tuple[str, ...]
    days: tuple[str, ...]
    transfer: tuple[str, ...]  # verbs of giving, past tense
    travel: str
    meal: str
    weather: tuple[str, ...]


WORLD_FILE = Path(__file__).with_name("synthetic_world.yaml")


def _domain(entry: dict) -> Domain:
    attributes = {
        name: Attribute(tuple(a["values"]), tuple(a["states"]), a["negation"], a["question"])
        for name, a in entry["attributes"].items()
    }
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in entry.items()}
    return Domain(**{**values, "attributes": attributes})


DOMAINS = {name: _domain(entry) for name, entry in yaml.safe_load(WORLD_FILE.read_text(encoding="utf-8")).items()}
TOWN, REALM = DOMAINS["town"], DOMAINS["realm"]
