"""A finding as a claim: its statement, how one definition judges a part of the grid, and
the verdict over the parts with where it holds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUPPORTED, NOT_SUPPORTED, MIXED, UNTESTABLE = "supported", "not supported", "mixed", "untestable"
FINDINGS = ("i", "ii", "iii", "iv")
# The table behind each finding, in order.
DETAILS = ("latent", "groups", "forgetting", "sensitivity")
DEFINITION_CHOICES = ("paper", "amuro", "both")
# As the study's abstract words them (arXiv 2408.06663).
STATEMENTS = {
    "i": "continual pre-training improves the model in a latent way that unveils after fine-tuning",
    "ii": "with extra fine-tuning, the datasets that the model does not demonstrate capability "
    "gain much more than those that the model performs well during the pre-training stage",
    "iii": "although the model benefits significantly through supervised fine-tuning, it may "
    "forget previously known domain knowledge and the tasks that are not seen during "
    "fine-tuning",
    "iv": "the model resembles high sensitivity to evaluation prompts after supervised "
    "fine-tuning, but this sensitivity can be alleviated by more pre-training",
}
SUMMARY_COLUMNS = [
    "finding",
    "definitions",
    "model",
    "protocol",
    "measure",
    "value",
    "ci_low",
    "ci_high",
    "verdict",
    "where",
]


@dataclass(frozen=True)
class Definitions:
    """``paper`` judges a part by the sign of its point estimate, as the study did; ``amuro``
    by its 95% interval lying on the claimed side of zero, each cell's own sampling noise
    drawn into the bootstrap."""

    name: str
    item_noise: bool

    def holds(self, value: float, low: float, high: float, sign: int = 1) -> bool:
        if self.name == "paper":
            return bool(sign * value > 0)
        return bool(low > 0) if sign > 0 else bool(high < 0)


PAPER = Definitions("paper", item_noise=False)
AMURO = Definitions("amuro", item_noise=True)
DEFINITIONS = {"paper": PAPER, "amuro": AMURO}


@dataclass(frozen=True)
class Part:
    """One part of the grid a claim is judged on (a checkpoint, a relation, a training set)."""

    label: str
    value: float
    ci_low: float
    ci_high: float
    holds: bool


def over_every(parts: list[Part], ordered: bool = True) -> tuple[str, str]:
    """A claim meant to hold on every part (every checkpoint): supported where all hold,
    mixed where some do (``where`` names them: ``from step X on`` when they are the later
    ones), not supported where none does."""
    if not parts:
        return UNTESTABLE, "no cells to measure it on"
    holding = [part.holds for part in parts]
    if all(holding):
        return SUPPORTED, "every checkpoint" if ordered else "everywhere"
    if not any(holding):
        return NOT_SUPPORTED, "nowhere"
    first = holding.index(True)
    if ordered and first > 0 and all(holding[first:]):
        return MIXED, f"from {parts[first].label} on"
    return MIXED, ", ".join(part.label for part in parts if part.holds)


def over_some(parts: list[Part], scope: str) -> tuple[str, str]:
    """A claim that something may happen: supported where it happens on any part, ``where``
    naming the parts (``cross-task only``), not supported where it happens on none."""
    if not parts:
        return UNTESTABLE, f"no {scope} cells to measure it on"
    holding = [part.label for part in parts if part.holds]
    if not holding:
        return NOT_SUPPORTED, "nowhere"
    if len(holding) == len(parts):
        return SUPPORTED, "everywhere"
    return SUPPORTED, ", ".join(holding) + " only"


def summary_row(
    finding: str,
    definitions: Definitions,
    model: str,
    protocol: str,
    measure: str,
    value: float,
    low: float,
    high: float,
    verdict: tuple[str, str],
) -> dict:
    return {
        "finding": finding,
        "definitions": definitions.name,
        "model": model,
        "protocol": protocol,
        "measure": measure,
        "value": _number(value),
        "ci_low": _number(low),
        "ci_high": _number(high),
        "verdict": verdict[0],
        "where": verdict[1],
    }


def untestable(finding: str, definitions: Definitions, model: str, protocol: str, measure: str, why: str) -> dict:
    return summary_row(finding, definitions, model, protocol, measure, np.nan, np.nan, np.nan, (UNTESTABLE, why))


def _number(value) -> float:
    return float(value) if value is not None else float("nan")
