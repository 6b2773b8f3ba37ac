"""``--checkpoints study``: the study's eight checkpoints, each mapped to the nearest checkpoint of a series.

The study scored OLMo-1B at steps 1000, 18000, 342000, 424000, 505000, 592000 and 738000 and at ``main``;
another series takes, for each, its checkpoint nearest in steps, and says which it took.
"""

from __future__ import annotations

from amuro.core.errors import UserError

STUDY = "study"
STUDY_STEPS = (1000, 18000, 342000, 424000, 505000, 592000, 738000)


def study_selection(series) -> list:
    """The checkpoints of ``series`` (an ``amuro.models.series.Series``) nearest the study's, each mapping
    printed on one line (requested -> taken); a checkpoint taken twice is scored once."""
    pool = [c for c in series.main_line if c.revision != "main"]
    if not pool and not series.checkpoints:
        raise UserError(f"series {series.name} holds no checkpoints for --checkpoints study: pick another series")
    chosen: list = []
    for step in STUDY_STEPS:
        if not pool:
            break
        taken = min(pool, key=lambda c: (abs(c.step - step), c.step))
        chosen += _take(chosen, f"step{step}", taken, exact=taken.step == step)
    final = series.last
    chosen += _take(chosen, "main", final, exact=final.revision == "main")
    return chosen


def _take(chosen: list, requested: str, taken, *, exact: bool) -> list:
    if taken in chosen:
        print(f"study checkpoint {requested} -> {taken.revision} (nearest; already taken)")
        return []
    note = "" if exact else f" (nearest: step {taken.step})"
    print(f"study checkpoint {requested} -> {taken.revision}{note}")
    return [taken]
