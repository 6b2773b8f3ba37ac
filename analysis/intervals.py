"""95% intervals for the difference between two eval runs' scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

RESAMPLES = 2000
SEED = 0
Z_95 = 1.96
# Resampled index matrices are built in blocks of about this many entries to bound memory.
_BLOCK_ENTRIES = 4_000_000
# Up to this many distinct differences, resamples are drawn as counts per value.
_FEW_VALUES = 64


def paired_bootstrap(
    differences: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float]:
    """95% percentile interval of the mean per-item difference, items resampled with
    replacement, ``resamples`` times, from ``np.random.default_rng(seed)``.

    A resample is fully described by how often each distinct difference is drawn, so when
    there are few distinct values (0/1 item scores give at most three) the counts are drawn
    at once: ``rng.multinomial(n, counts / n, size=resamples) @ values / n``, with ``values,
    counts = np.unique(differences, return_counts=True)``. Otherwise item indices are drawn,
    ``rng.integers(0, n, size=(rows, n))``, in row blocks of at most ``_BLOCK_ENTRIES``
    entries (one block for small ``n``).
    """
    differences = np.asarray(differences, dtype=float)
    n = len(differences)
    rng = np.random.default_rng(seed)
    values, counts = np.unique(differences, return_counts=True)
    if len(values) <= _FEW_VALUES:
        means = rng.multinomial(n, counts / n, size=resamples) @ values / n
    else:
        rows_per_block = max(1, _BLOCK_ENTRIES // n)
        means = np.empty(resamples)
        for start in range(0, resamples, rows_per_block):
            stop = min(resamples, start + rows_per_block)
            index = rng.integers(0, n, size=(stop - start, n))
            means[start:stop] = differences[index].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def item_differences(base: pd.DataFrame, tuned: pd.DataFrame) -> np.ndarray:
    """tuned − base item scores on the items both tables score (matched by item_id)."""
    base = base.drop_duplicates("item_id").set_index("item_id")["item_score"]
    tuned = tuned.drop_duplicates("item_id").set_index("item_id")["item_score"]
    shared = base.index.intersection(tuned.index, sort=False)
    differences = tuned.loc[shared].to_numpy(float) - base.loc[shared].to_numpy(float)
    return differences[np.isfinite(differences)]


def normal_se_interval(
    difference: np.ndarray, se_first: np.ndarray, se_second: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """difference ± 1.96·sqrt(se1² + se2²), treating the two runs as independent."""
    half_width = Z_95 * np.sqrt(np.square(se_first) + np.square(se_second))
    return difference - half_width, difference + half_width
