"""What the scorer asks of something it scores: a catalogue dataset or an lm-eval task, behind one interface.

``ScorableDataset`` is everything ``amuro.scoring.cells`` needs to key, tag and score a (dataset, prompt
format) cell. ``LmEvalTask`` implements it itself; a catalogue ``DatasetSpec`` (the data layer, which knows
nothing of scoring) is wrapped in ``CatalogueDataset``. ``scorable`` turns either into the interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from amuro.core.protocol import protocol
from amuro.core.settings import EvalSettings
from amuro.data import DatasetSpec, formats_for, relation, render
from amuro.data.formats import few_shot_prefix
from amuro.data.lineage import log_row_sets
from amuro.data.protocol import for_protocol
from amuro.data.provenance import is_commit
from amuro.scoring.cell_identity import cell_versions, read_content, scoring_method
from amuro.scoring.cell_items import CATWALK, CellExamples, catwalk_split, cell_examples, demo_rule, scored_split
from amuro.scoring.cell_scoring import ItemResult, score_cell
from amuro_contract import EVAL_CONTEXT


class ScorableDataset(ABC):
    """A set of items the scorer scores, one eval run per prompt format (its cells)."""

    @property
    @abstractmethod
    def name(self) -> str:
        """``amuro.eval_dataset``."""

    @property
    @abstractmethod
    def task(self) -> str:
        """``amuro.task``: the task family."""

    @property
    @abstractmethod
    def metric(self) -> str:
        """``amuro.metric``: what ``score`` measures."""

    @property
    @abstractmethod
    def formats(self) -> tuple[str, ...]:
        """The prompt formats it can be scored in."""

    @abstractmethod
    def for_protocol(self, name: str) -> ScorableDataset:
        """The dataset as the protocol prompts and scores it."""

    @abstractmethod
    def key_settings(self, fmt: str, settings: EvalSettings) -> dict[str, object]:
        """What enters a cell's run key beside the model: the settings that change its scores and what it reads."""

    @abstractmethod
    def result_versions(self, settings: EvalSettings) -> dict[str, str]:
        """The result versions of the cell's rendering, scoring method and metric."""

    @abstractmethod
    def relation(self, train_dataset: str | None) -> str:
        """``amuro.relation`` to the dataset a model was tuned on: base, in-domain, out-of-domain, cross-task."""

    @abstractmethod
    def shots(self, settings: EvalSettings) -> int:
        """``amuro.shots``: the demonstrations before each item."""

    def check(self, settings: EvalSettings) -> None:
        """Fail, before any scoring, when it cannot be prompted with these settings."""

    @abstractmethod
    def params(self, fmt: str, settings: EvalSettings, common: dict[str, object]) -> dict[str, object]:
        """The params a cell logs before scoring, from the settings' own (``common``)."""

    @abstractmethod
    def log_inputs(self, fmt: str, settings: EvalSettings) -> None:
        """Record the rows the cell reads as inputs of the active run."""

    @abstractmethod
    def score(
        self, model, tokenizer, fmt: str, settings: EvalSettings, known=None
    ) -> tuple[list[ItemResult], str, dict[str, object]]:
        """Score the cell (``known``: answers a killed run already computed); returns the item results, the
        first item's prompt and params to log once scored."""


@dataclass(frozen=True)
class CatalogueDataset(ScorableDataset):
    """A catalogue (or ``--dataset-spec``) dataset, scored by amuro's own templates and scorer."""

    spec: DatasetSpec
    _read: dict[str, CellExamples] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _examples(self, settings: EvalSettings) -> CellExamples:
        """The items and demonstrations these settings choose, read once for every cell of this dataset (its
        formats, and each model an entry point scores): its keys, params, inputs and scoring."""
        key = repr(settings)
        if key not in self._read:
            self._read.clear()
            self._read[key] = cell_examples(self.spec, settings)
        return self._read[key]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def formats(self) -> tuple[str, ...]:
        return formats_for(self.spec)

    def for_protocol(self, name: str) -> CatalogueDataset:
        adapted = for_protocol(self.spec, name)
        # the same dataset stays this instance, so a cell's key, params and scoring share one read of its examples
        return self if adapted == self.spec else CatalogueDataset(adapted)

    def key_settings(self, fmt: str, settings: EvalSettings) -> dict[str, object]:
        chosen = self._examples(settings)
        # a pinned dataset's commit identifies what the cell reads (no entry for the unpinned)
        pinned = {"dataset_revision": self.spec.revision} if is_commit(self.spec.revision) else {}
        return {
            **settings.cell_key_settings(self.spec.kind),
            **pinned,
            **read_content(self.spec, fmt, chosen.demo_sets(), chosen.items),
        }

    def result_versions(self, settings: EvalSettings) -> dict[str, str]:
        return cell_versions(self.spec, settings)

    def relation(self, train_dataset: str | None) -> str:
        return relation(train_dataset, self.spec.name)

    def shots(self, settings: EvalSettings) -> int:
        return settings.shots

    def check(self, settings: EvalSettings) -> None:
        self._examples(settings)

    def params(self, fmt: str, settings: EvalSettings, common: dict[str, object]) -> dict[str, object]:
        chosen = self._examples(settings)
        rule = demo_rule(self.spec, settings)
        return {
            **common,
            "method": scoring_method(self.spec, settings),
            "split": scored_split(self.spec),
            "demos": rule,
            "demo_ids": "per item, in predictions.json"
            if rule == CATWALK
            else ",".join(d.item_id for d in chosen.demos)[:6000],
            **chosen.sample_params(),
        }

    def log_inputs(self, fmt: str, settings: EvalSettings) -> None:
        spec, chosen = self.spec, self._examples(settings)
        row_sets = [(spec.splits[scored_split(spec)], chosen.items, EVAL_CONTEXT)]
        if chosen.demo_sets():
            rule = demo_rule(spec, settings)
            demo_role = {"train": "train", CATWALK: catwalk_split(spec)}.get(rule, scored_split(spec))
            row_sets.append((spec.splits[demo_role], chosen.demo_sets(), "demonstrations"))
        log_row_sets(spec, row_sets)

    def score(
        self, model, tokenizer, fmt: str, settings: EvalSettings, known=None
    ) -> tuple[list[ItemResult], str, dict[str, object]]:
        spec, chosen = self.spec, self._examples(settings)
        demos, items = chosen.demos, chosen.items
        verbatim = protocol(settings.protocol).templates == "verbatim"
        first = chosen.item_demos[0] if chosen.item_demos else demos
        prompt = few_shot_prefix(spec, first, fmt, verbatim=verbatim) + render(spec, items[0], fmt) if items else ""
        results = score_cell(
            model, tokenizer, spec, fmt, demos, items, settings, known=known, item_demos=chosen.item_demos
        )
        return results, prompt, {}


def scorable(dataset: DatasetSpec | ScorableDataset, protocol_name: str) -> ScorableDataset:
    """The dataset behind the scorer's interface, as the protocol prompts and scores it."""
    wrapped = CatalogueDataset(dataset) if isinstance(dataset, DatasetSpec) else dataset
    return wrapped.for_protocol(protocol_name)
