"""95% intervals for score differences: one bootstrap (items, or seeds then items), and the
normal interval from standard errors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from amuro_contract.resampling import RESAMPLES, resampled_means

SEED = 0
Z_95 = 1.96


def bootstrap_means(differences_by_seed: list[np.ndarray], resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``resamples`` bootstrap means of per-item differences, from ``np.random.default_rng(seed)``.

    With one array (one seed), items are resampled with replacement. With several (seed
    replicates, each paired item by item against the same base), the bootstrap has two levels:
    each resample draws as many seeds as there are, with replacement
    (``rng.integers(0, S, size=(resamples, S))``), resamples the items of every drawn seed, and
    averages the drawn seeds' item means. The item level of seed ``s`` is drawn in one go for
    all of its draws, seed by seed, after the seed level.
    """
    groups = [np.asarray(group, dtype=float) for group in differences_by_seed]
    rng = np.random.default_rng(seed)
    if len(groups) == 1:
        return resampled_means(groups[0], resamples, rng)
    picks = rng.integers(0, len(groups), size=(resamples, len(groups)))
    totals = np.zeros(resamples)
    for index, group in enumerate(groups):
        draws = (picks == index).sum(axis=1)
        means = resampled_means(group, int(draws.sum()), rng)
        totals += np.bincount(np.repeat(np.arange(resamples), draws), weights=means, minlength=resamples)
    return totals / len(groups)


def bootstrap_interval(
    differences_by_seed: list[np.ndarray], resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float]:
    """95% percentile interval of :func:`bootstrap_means`."""
    low, high = np.percentile(bootstrap_means(differences_by_seed, resamples, seed), [2.5, 97.5])
    return float(low), float(high)


def paired_bootstrap(differences: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """95% percentile interval of the mean per-item difference of one pair of runs."""
    return bootstrap_interval([differences], resamples, seed)


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
    """difference ± 1.96·sqrt(se1² + se2²), treating the two sides as independent."""
    half_width = Z_95 * np.sqrt(np.square(se_first) + np.square(se_second))
    return difference - half_width, difference + half_width


def replicate_se(n_seeds: np.ndarray, seed_var: np.ndarray, mean_se2: np.ndarray) -> np.ndarray:
    """Standard error of the mean score of ``n_seeds`` replicates: sqrt(max(s², mean se²) / S),
    where s² is the across-seed variance (it holds the seed noise and the scoring noise) and
    the mean squared per-run standard error keeps it from vanishing when two seeds happen to
    agree. One replicate: its own standard error."""
    n_seeds = np.asarray(n_seeds, dtype=float)
    variance = np.fmax(np.nan_to_num(np.asarray(seed_var, dtype=float), nan=0.0), mean_se2)
    return np.where(n_seeds > 1, np.sqrt(variance / n_seeds), np.sqrt(mean_se2))
