"""Item scores (accuracy, ROUGE-L F) and seeded percentile bootstrap intervals over items."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


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
        return {"score": self.score, "score_ci_low": self.ci_low, "score_ci_high": self.ci_high,
                "score_ci_mid": self.ci_mid, "score_se": self.se, "n": self.n}

    @property
    def ci_mid(self) -> float:
        """The interval's midpoint: the score the study reports (``(high - low) / 2 + low``)."""
        return (self.ci_high - self.ci_low) / 2 + self.ci_low


def _resampled_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    # Chunks keep memory bounded for large sets (resamples x items indices at once would not be).
    chunk = max(1, 2_000_000 // max(1, len(values)))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        picks = rng.integers(0, len(values), size=(stop - start, len(values)))
        means[start:stop] = values[picks].mean(axis=1)
    return means


def bootstrap(item_scores: Sequence[float], *, resamples: int = 3000, seed: int = 0,
              confidence: float = 0.95) -> Estimate:
    """Mean of the item scores, the percentile interval of resampled means, and their standard deviation."""
    values = np.asarray(item_scores, dtype=float)
    if values.size == 0:
        raise ValueError("bootstrap needs at least one item score")
    means = _resampled_means(values, resamples, seed)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Estimate(float(values.mean()), float(low), float(high), float(means.std(ddof=1)) if resamples > 1 else 0.0,
                    int(values.size))


def paired_bootstrap(scores_a: Sequence[float], scores_b: Sequence[float], *, resamples: int = 3000,
                     seed: int = 0, confidence: float = 0.95) -> Estimate:
    """The mean difference ``b - a`` over paired items, resampling items (the same picks for both)."""
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired bootstrap needs the same items on both sides, got {a.size} and {b.size}")
    return bootstrap(b - a, resamples=resamples, seed=seed, confidence=confidence)
