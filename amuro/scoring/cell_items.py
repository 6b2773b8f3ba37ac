"""Which items a cell scores, and which demonstrations come before each.

Items: the whole scored split, or with ``max_examples`` a sample seeded by the eval seed and the dataset's
name (``ITEM_SAMPLE``), kept in row order: every checkpoint and model scored with one seed scores the same
items, so cells pair item by item, and another seed draws another sample. Demonstrations: ``train`` (a seeded
sample of the train split, never among the items), ``first-k`` (the first k rows of the scored split, the
study's, which stay the first rows whatever items are sampled), or, for multiple-choice suites under the
study's protocol, catwalk's draw (``CATWALK_DRAW``): OLMo's evaluation, which the study ran those suites
through, draws each item's own demonstrations with ``Task.get_fewshot_instances``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from dataclasses import dataclass

from amuro.core.errors import UserError
from amuro.core.protocol import protocol
from amuro.core.settings import EvalSettings
from amuro.data import DatasetSpec, Example, load_examples

ITEM_SAMPLE = "random.Random('items/<seed>/<dataset>').sample(range(rows), max_examples), in row order"
CATWALK_DRAW = "random.Random(row index).sample(<demo split>, k + 1), the item itself left out, first k"
CATWALK = "catwalk"


@dataclass(frozen=True)
class CellExamples:
    """A cell's items (with their rows in the scored split) and demonstrations: one list shared by every item,
    or (catwalk's draw) one list per item."""

    items: list[Example]
    rows: list[int]
    total: int
    demos: list[Example]
    item_demos: list[list[Example]] | None = None

    def sample_params(self) -> dict[str, str]:
        """How the items were chosen, and a digest of their row indices (equal exactly for the same rows)."""
        digest = hashlib.sha256(",".join(map(str, self.rows)).encode()).hexdigest()[:20]
        rule = ITEM_SAMPLE if len(self.rows) < self.total else "all rows"
        return {"item_sample": rule, "item_rows": f"{len(self.rows)} of {self.total}", "item_rows_digest": digest}

    def demo_sets(self) -> list[Example]:
        """Every demonstration used, once each."""
        if self.item_demos is None:
            return list(self.demos)
        seen = {}
        for demos in self.item_demos:
            seen.update({demo.item_id: demo for demo in demos})
        return list(seen.values())


def scored_split(spec: DatasetSpec) -> str:
    return "test" if "test" in spec.splits else "validation"


def demo_rule(spec: DatasetSpec, settings: EvalSettings) -> str:
    """``train``, ``first-k`` or ``catwalk``: ``--demos`` when given, else the protocol's rule for this kind."""
    if settings.demos is None and spec.kind == "multiple_choice":
        if protocol(settings.protocol).mc_demonstrations == CATWALK:
            return CATWALK
    return settings.demo_source


def item_rows(total: int, settings: EvalSettings, name: str) -> list[int]:
    """The rows a cell scores: all, or ``max_examples`` of them drawn by ``ITEM_SAMPLE``."""
    wanted = settings.max_examples
    if not wanted or wanted >= total:
        return list(range(total))
    return sorted(random.Random(f"items/{settings.seed}/{name}").sample(range(total), wanted))


def cell_examples(spec: DatasetSpec, settings: EvalSettings) -> CellExamples:
    split = scored_split(spec)
    pool = load_examples(spec, split)
    rows = item_rows(len(pool), settings, spec.name)
    chosen = CellExamples([pool[r] for r in rows], rows, len(pool), [])
    if settings.shots == 0:
        return chosen
    rule = demo_rule(spec, settings)
    if rule == "first-k":
        if settings.shots > len(pool):
            raise UserError(
                f"shots ({settings.shots}) is larger than the {split} split of {spec.name} "
                f"({len(pool)} items): lower --shots"
            )
        return dataclasses.replace(chosen, demos=pool[: settings.shots])
    if rule == CATWALK:
        return dataclasses.replace(chosen, item_demos=_catwalk_demos(spec, chosen, settings.shots))
    return dataclasses.replace(chosen, demos=_train_demos(spec, chosen.items, settings))


def demos_and_items(spec: DatasetSpec, settings: EvalSettings) -> tuple[list[Example], list[Example]]:
    """The shared demonstrations and the scored items of a dataset; ``train`` demos are never among the items."""
    chosen = cell_examples(spec, settings)
    return chosen.demos, chosen.items


def _train_demos(spec: DatasetSpec, items: list[Example], settings: EvalSettings) -> list[Example]:
    if "train" not in spec.splits:
        raise UserError(
            f"dataset {spec.name} has no train split to draw demonstrations from: use --demos first-k or --shots 0"
        )
    scored = {ex.item_id for ex in items} | {tuple(sorted(ex.slots.items())) for ex in items}
    train = [
        ex
        for ex in load_examples(spec, "train")
        if ex.item_id not in scored and tuple(sorted(ex.slots.items())) not in scored
    ]
    if settings.shots > len(train):
        raise UserError(
            f"shots ({settings.shots}) is larger than the training split of {spec.name} "
            f"({len(train)} usable examples): lower --shots"
        )
    return random.Random(f"demos/{settings.seed}/{spec.name}").sample(train, settings.shots)


def catwalk_split(spec: DatasetSpec) -> str:
    """catwalk's ``fewshot_instances_split``: the train split, else the validation split."""
    for role in ("train", "validation"):
        if role in spec.splits:
            return role
    raise UserError(f"dataset {spec.name} has no train or validation split to draw demonstrations from: use --shots 0")


def _catwalk_demos(spec: DatasetSpec, chosen: CellExamples, shots: int) -> list[list[Example]]:
    """catwalk's ``get_fewshot_instances(k, random_seed=i, exceptions=instance)`` for the item at row ``i`` (the
    study passed no ``--fewshot-seed``, so the seed is the instance's index): the whole split, unsampled."""
    role = catwalk_split(spec)
    pool = load_examples(dataclasses.replace(spec, train_size=None, subsample=None), role)
    if shots + 1 > len(pool):
        raise UserError(
            f"shots ({shots}) is larger than the {spec.splits[role]} split of {spec.name} less one "
            f"({len(pool)} rows): lower --shots"
        )
    drawn = []
    for item, row in zip(chosen.items, chosen.rows):
        same = _content(item)
        picks = random.Random(row).sample(pool, shots + 1)
        drawn.append([demo for demo in picks if _content(demo) != same][:shots])
    return drawn


def _content(ex: Example) -> tuple:
    return tuple(sorted(ex.slots.items())), ex.choices, ex.gold, ex.target
