"""What identifies an eval cell beyond its settings: the result versions of the code that scores it, and the
content of what it reads (its key holds both, so changed code or changed rows score it again)."""

from __future__ import annotations

from collections.abc import Sequence

from amuro.core.settings import EvalSettings
from amuro.data import DatasetSpec, Example
from amuro.data.formats import template
from amuro.data.lineage import rows_digest
from amuro.data.protocol import rendering_version
from amuro.scoring.cell_scoring import SCORING_VERSIONS
from amuro.scoring.metrics import metric_version


def scoring_method(spec: DatasetSpec, settings: EvalSettings) -> str:
    """How a catalogue cell's items are scored: the classification method, ``loglik`` ranking or ``generate``."""
    return {"classification": settings.method, "multiple_choice": "loglik"}.get(spec.kind, "generate")


def cell_versions(spec: DatasetSpec, settings: EvalSettings) -> dict[str, str]:
    """The result versions of a catalogue cell's rendering, scoring method and metric (``nli-1``, ``loglik-1``)."""
    return result_versions(rendering_version(spec.task, settings.protocol), scoring_method(spec, settings), spec.metric)


def result_versions(rendering: str, method: str, metric: str) -> dict[str, str]:
    """A cell's result versions from its rendering's version, its scoring method and its metric."""
    return {"rendering": rendering, "scoring": f"{method}-{SCORING_VERSIONS[method]}", "metric": metric_version(metric)}


def read_content(spec: DatasetSpec, fmt: str, demos: Sequence[Example], items: Sequence[Example]) -> dict[str, str]:
    """What a cell reads, by content: the digests of its scored items and demonstrations and its template (a
    ``--dataset-spec`` file may change either under the same dataset name)."""
    return {"items": rows_digest(items), "demos": rows_digest(demos), "template": template(spec, fmt)}
