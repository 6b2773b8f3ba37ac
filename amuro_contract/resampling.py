"""The item bootstrap of the contract's intervals: an eval run's ``score_ci_low``/``score_ci_high``
(``amuro.scoring.metrics``) and the analysis's intervals of differences (``analysis.intervals``) resample
items with this one function, so the same values and seed give the same draws. It imports numpy only."""

import numpy as np

RESAMPLES = 3000
# Resampled index matrices are built in blocks of about this many entries to bound memory.
_BLOCK_ENTRIES = 4_000_000
# Up to this many distinct values, resamples are drawn as counts per value.
_FEW_VALUES = 64


def resampled_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``resamples`` resamples of ``values`` with replacement.

    A resample is fully described by how often each distinct value is drawn, so when there are few distinct
    values (0/1 item scores, or their differences) the counts are drawn at once:
    ``rng.multinomial(n, counts / n, size=resamples) @ distinct / n``, with ``distinct, counts =
    np.unique(values, return_counts=True)``. Otherwise item indices are drawn, ``rng.integers(0, n, size=(rows,
    n))``, in row blocks of at most ``_BLOCK_ENTRIES`` entries (one block for small ``n``).
    """
    n = len(values)
    distinct, counts = np.unique(values, return_counts=True)
    if len(distinct) <= _FEW_VALUES:
        return rng.multinomial(n, counts / n, size=resamples) @ distinct / n
    rows_per_block = max(1, _BLOCK_ENTRIES // n)
    means = np.empty(resamples)
    for start in range(0, resamples, rows_per_block):
        stop = min(resamples, start + rows_per_block)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means
