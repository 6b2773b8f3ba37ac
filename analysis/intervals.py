"""95% intervals for the difference between two eval runs' scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

RESAMPLES = 2000
SEED = 0
Z_95 = 1.96
# Resampled index matrices are built in blocks of about this many entries to bound memory.
_BLOCK_ENTRIES = 4_000_000


def paired_bootstrap(
    differences: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float]:
    """95% percentile interval of the mean of per-item differences, items resampled with
    replacement.

    The draws are ``default_rng(seed).integers(0, n, size=(resamples, n))`` taken in row
    blocks of at most ``_BLOCK_ENTRIES`` entries, so for small ``n`` a single call of that
    expression reproduces them.
    """
    differences = np.asarray(differences, dtype=float)
    n = len(differences)
    rng = np.random.default_rng(seed)
    rows_per_block = max(1, _BLOCK_ENTRIES // n)
    means = np.empty(resamples)
    for start in range(0, resamples, rows_per_block):
        stop = min(resamples, start + rows_per_block)
        index = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = differences[index].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def item_differences(base: pd.DataFrame, tuned: pd.DataFrame) -> np.ndarray:
    """tuned − base item scores on the items both tables share (matched by item_id)."""
    base = base.drop_duplicates("item_id").set_index("item_id")["item_score"]
    tuned = tuned.drop_duplicates("item_id").set_index("item_id")["item_score"]
    shared = base.index.intersection(tuned.index, sort=False)
    return tuned.loc[shared].to_numpy(float) - base.loc[shared].to_numpy(float)


def normal_se_interval(
    difference: np.ndarray, se_first: np.ndarray, se_second: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """difference ± 1.96·sqrt(se1² + se2²), treating the two runs as independent."""
    half_width = Z_95 * np.sqrt(np.square(se_first) + np.square(se_second))
    return difference - half_width, difference + half_width
