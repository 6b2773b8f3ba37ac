"""Item scores (accuracy, ROUGE-L F) and seeded percentile bootstrap intervals over items."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from amuro_contract import Metric
from amuro_contract.resampling import RESAMPLES, resampled_means

# Result versions of the item metrics with the bootstrap over them (a bootstrap change bumps every entry);
# ``lm-eval`` covers the per-document metrics lm-eval computes, bootstrapped here.
METRIC_VERSIONS = {"accuracy": 1, "rougeL": 1, "lm-eval": 1}
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def metric_version(name: str) -> str:
    """``accuracy-1``: the metric's name and result version."""
    return f"{name}-{METRIC_VERSIONS.get(name, METRIC_VERSIONS['lm-eval'])}"


def normalize(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: how generated labels are matched."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """1.0 where the normalized prediction equals the normalized reference, else 0.0."""
    return [float(normalize(p) == normalize(r)) for p, r in zip(predictions, references, strict=True)]


@lru_cache(maxsize=2)
def _rouge_scorer(stemming: bool):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stemming)


def rouge_l(predictions: Sequence[str], references: Sequence[str], *, stemming: bool = True) -> list[float]:
    """ROUGE-L F-measure per item (``rouge-score``), with Porter stemming or, as HF ``evaluate``'s ``rouge``
    computes it by default (``RougeScorer(rouge_types, use_stemmer=False).score(reference, prediction)``), without."""
    scorer = _rouge_scorer(stemming)
    return [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)]


@dataclass(frozen=True)
class Estimate:
    """A mean over items with its 95% percentile bootstrap interval and bootstrap standard error."""

    score: float
    ci_low: float
    ci_high: float
    se: float
    n: int

    def metrics(self) -> dict[str, float]:
        return {
            Metric.SCORE: self.score,
            Metric.CI_LOW: self.ci_low,
            Metric.CI_HIGH: self.ci_high,
            Metric.CI_MID: self.ci_mid,
            Metric.SE: self.se,
            Metric.N: self.n,
        }

    @property
    def ci_mid(self) -> float:
        """The interval's midpoint: the score the study reports (``(high - low) / 2 + low``)."""
        return (self.ci_high - self.ci_low) / 2 + self.ci_low


def bootstrap(item_scores: Sequence[float], *, resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
    """Mean of the item scores, the 95% percentile interval of resampled means, and their standard deviation."""
    values = np.asarray(item_scores, dtype=float)
    if values.size == 0:
        raise ValueError("bootstrap needs at least one item score")
    means = resampled_means(values, resamples, np.random.default_rng(seed))
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(
        float(values.mean()),
        float(low),
        float(high),
        float(means.std(ddof=1)) if resamples > 1 else 0.0,
        int(values.size),
    )
