"""Which datasets a checkpoint series learns during pre-training, and gains per group."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.intervals import Z_95
from analysis.pairing import is_base

LEARNED_COLUMNS = [
    "model",
    "eval_dataset",
    "protocol",
    "task",
    "first_step",
    "last_step",
    "first_score",
    "last_score",
    "n_checkpoints",
    "slope",
    "slope_ci_low",
    "slope_ci_high",
    "learned_in",
]
_SERIES = ["model", "eval_dataset", "protocol"]
GROUP_COLUMNS = ["model", "protocol", "step", "group", "mean_gain", "n"]
PRE_TRAINING = "pre-training"
FINE_TUNING = "fine-tuning"
UNCLASSIFIED = "unclassified"


def learned(runs: pd.DataFrame, prompt_format: str = "default", shots: int | None = None) -> pd.DataFrame:
    """Per (model, eval dataset, protocol), on base runs in one prompt format: ``pre-training``
    when the base score rises across the whole checkpoint series beyond its noise, else
    ``fine-tuning``.

    The trend test: the least-squares slope of the score against log10(step) over every
    checkpoint, with a 95% normal interval whose variance is the larger of the scores' own
    sampling variance carried through the fit (from each run's standard error) and the
    scatter of the scores around the line (from three checkpoints on). A series rises when
    the interval lies above zero; with two checkpoints this is the endpoints' comparison.

    With ``shots=None`` each dataset uses the shot count logged for the most checkpoints
    (ties: the smaller count). Seeds of one checkpoint are averaged. A run without a standard
    error uses its interval's half width / 1.96.
    """
    base = runs[is_base(runs) & (runs["format"] == prompt_format)].copy()
    half_width = (base["score_ci_high"] - base["score_ci_low"]) / (2 * Z_95)
    base["score_se"] = base["score_se"].fillna(half_width).fillna(0.0)
    if shots is not None:
        base = base[base["shots"] == shots]
    elif not base.empty:
        base = base[base["shots"] == _usual_shots(base)]
    if base.empty:
        return pd.DataFrame(columns=LEARNED_COLUMNS)
    series = (
        base.groupby(_SERIES + ["step"])
        .agg(task=("task", "first"), score=("score", "mean"), se=("score_se", "mean"))
        .reset_index()
    )
    rows = [_trend(key, points) for key, points in series.groupby(_SERIES, sort=True)]
    return pd.DataFrame(rows, columns=LEARNED_COLUMNS)


def _trend(key: tuple, points: pd.DataFrame) -> list:
    points = points.sort_values("step")
    x = np.log10(np.maximum(points["step"].to_numpy(float), 1.0))
    y, se = points["score"].to_numpy(float), points["se"].to_numpy(float)
    slope = low = high = np.nan
    centred = x - x.mean()
    spread = float(np.square(centred).sum())
    if len(points) > 1 and spread > 0:
        weights = centred / spread
        slope = float(weights @ (y - y.mean()))
        variance = float(np.square(weights) @ np.square(se))
        if len(points) > 2:
            residuals = y - y.mean() - slope * centred
            variance = max(variance, float(np.square(residuals).sum()) / (len(points) - 2) / spread)
        low, high = slope - Z_95 * np.sqrt(variance), slope + Z_95 * np.sqrt(variance)
    learned_in = PRE_TRAINING if low > 0 else FINE_TUNING
    return [
        *key,
        points["task"].iat[0],
        int(points["step"].iat[0]),
        int(points["step"].iat[-1]),
        y[0],
        y[-1],
        len(points),
        slope,
        low,
        high,
        learned_in,
    ]


def _usual_shots(base: pd.DataFrame) -> pd.Series:
    """For each base run, the shot count its (model, eval dataset, protocol) is analysed at."""
    counts = base.groupby(_SERIES + ["shots"])["step"].nunique().reset_index()
    counts = counts.sort_values(["step", "shots"], ascending=[False, True])
    usual = counts.drop_duplicates(_SERIES).set_index(_SERIES)["shots"]
    keys = pd.MultiIndex.from_frame(base[_SERIES])
    return pd.Series(usual.reindex(keys).to_numpy(), index=base.index)


def gains_by_group(
    gains_table: pd.DataFrame,
    learned_table: pd.DataFrame,
    relations: tuple[str, ...] | None = ("in-domain",),
) -> pd.DataFrame:
    """Mean gain per checkpoint for datasets learned in pre-training vs in fine-tuning.

    By default only in-domain gains count (tuned on the dataset it is scored on), as in the
    study (for instruction tuning, the multiple-choice suites it targets are in-domain);
    ``relations=None`` uses every row. Datasets without a base series to classify
    them form the group ``unclassified`` rather than being dropped.
    """
    rows = gains_table
    if relations is not None:
        rows = rows[rows["relation"].isin(relations)]
    labelled = rows.merge(learned_table[_SERIES + ["learned_in"]], on=_SERIES, how="left")
    labelled["group"] = labelled["learned_in"].fillna(UNCLASSIFIED)
    table = labelled.groupby(["model", "protocol", "step", "group"])["gain"].agg(mean_gain="mean", n="count")
    return table.reset_index()[GROUP_COLUMNS]
