"""Seeded bootstrap over units (datasets, dataset pairs), optionally with each unit's own
sampling noise drawn on top (a two-level bootstrap: units, then items through their standard
error)."""

from __future__ import annotations

import numpy as np

from analysis.intervals import SEED, Z_95

RESAMPLES = 2000


def se_from_interval(low, high) -> np.ndarray:
    """Standard error of a 95% interval's estimate: its half width / 1.96 (0 where unknown)."""
    se = (np.asarray(high, dtype=float) - np.asarray(low, dtype=float)) / (2 * Z_95)
    return np.nan_to_num(se, nan=0.0)


def resampled_means(
    values: np.ndarray, ses: np.ndarray | None = None, *, resamples: int = RESAMPLES, seed: int = SEED
) -> np.ndarray:
    """``resamples`` x columns means over rows (units) drawn with replacement.

    ``values`` is units x columns (NaN where a unit lacks a column); the same units are drawn
    for every column, so differences between columns keep their pairing. With ``ses`` (same
    shape), each drawn value is moved by normal noise of its standard error.
    """
    values = np.atleast_2d(np.asarray(values, dtype=float))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(resamples, len(values)))
    drawn = values[picks]
    if ses is not None:
        drawn = drawn + rng.standard_normal(drawn.shape) * np.atleast_2d(ses)[picks]
    with np.errstate(invalid="ignore"), _no_empty_slice_warning():
        return np.nanmean(drawn, axis=1)


def percentile_interval(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile interval of bootstrap draws (resamples on the first axis)."""
    with _no_empty_slice_warning():
        low, high = np.nanpercentile(draws, [2.5, 97.5], axis=0)
    return low, high


class _no_empty_slice_warning:
    """All-NaN columns (a unit set missing at one checkpoint) give NaN, which is the answer."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)
