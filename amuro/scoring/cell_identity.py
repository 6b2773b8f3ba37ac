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
from amuro.scoring.lmeval_tasks import LmEvalTask
from amuro.scoring.metrics import metric_version


def scoring_method(spec: DatasetSpec | LmEvalTask, settings: EvalSettings) -> str:
    """How a cell's items are scored: the classification method, ``loglik`` ranking, ``generate`` or lm-eval."""
    if isinstance(spec, LmEvalTask):
        return "lm-eval"
    return {"classification": settings.method, "multiple_choice": "loglik"}.get(spec.kind, "generate")


def cell_versions(spec: DatasetSpec | LmEvalTask, settings: EvalSettings) -> dict[str, str]:
    """The result versions of a cell's rendering, scoring method and metric (``nli-1``, ``loglik-1``, ...)."""
    method = scoring_method(spec, settings)
    if isinstance(spec, LmEvalTask):
        rendering = f"lm-eval-{spec.key_settings(settings)['lm_eval']}"  # the task's own prompts
    else:
        rendering = rendering_version(spec.task, settings.protocol)
    return {
        "rendering": rendering,
        "scoring": f"{method}-{SCORING_VERSIONS[method]}",
        "metric": metric_version(spec.metric),
    }


def read_content(spec: DatasetSpec, fmt: str, demos: Sequence[Example], items: Sequence[Example]) -> dict[str, str]:
    """What a cell reads, by content: the digests of its scored items and demonstrations and its template (a
    ``--dataset-spec`` file may change either under the same dataset name)."""
    return {"items": rows_digest(items), "demos": rows_digest(demos), "template": template(spec, fmt)}
