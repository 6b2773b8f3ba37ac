"""Which datasets a checkpoint series learns during pre-training, and gains per group."""

from __future__ import annotations

import pandas as pd

from analysis.pairing import is_base
from analysis.intervals import Z_95

LEARNED_COLUMNS = [
    "model", "eval_dataset", "protocol", "task", "first_step", "last_step", "first_score",
    "last_score", "learned_in",
]
_SERIES = ["model", "eval_dataset", "protocol"]
GROUP_COLUMNS = ["model", "protocol", "step", "group", "mean_gain", "n"]
PRE_TRAINING = "pre-training"
FINE_TUNING = "fine-tuning"
UNCLASSIFIED = "unclassified"


def learned(
    runs: pd.DataFrame, prompt_format: str = "default", shots: int | None = None
) -> pd.DataFrame:
    """Per (model, eval dataset, protocol), on base runs in one prompt format:
    ``pre-training`` when the last checkpoint's interval lies above the first's (last ci_low
    > first ci_high), else ``fine-tuning``.

    With ``shots=None`` each dataset uses the shot count logged for the most checkpoints
    (ties: the smaller count). Seeds of one checkpoint are averaged. A run without a logged
    interval uses score ± 1.96·score_se.
    """
    base = runs[is_base(runs) & (runs["format"] == prompt_format)].copy()
    base["score_ci_low"] = base["score_ci_low"].fillna(base["score"] - Z_95 * base["score_se"])
    base["score_ci_high"] = base["score_ci_high"].fillna(base["score"] + Z_95 * base["score_se"])
    if shots is not None:
        base = base[base["shots"] == shots]
    elif not base.empty:
        base = base[base["shots"] == _usual_shots(base)]
    if base.empty:
        return pd.DataFrame(columns=LEARNED_COLUMNS)
    series = (
        base.groupby(_SERIES + ["step"])
        .agg(task=("task", "first"), score=("score", "mean"),
             ci_low=("score_ci_low", "mean"), ci_high=("score_ci_high", "mean"))
        .reset_index()
    )
    first = series.drop_duplicates(_SERIES, keep="first").set_index(_SERIES)
    last = series.drop_duplicates(_SERIES, keep="last").set_index(_SERIES)
    table = pd.DataFrame({
        "task": first["task"],
        "first_step": first["step"],
        "last_step": last["step"],
        "first_score": first["score"],
        "last_score": last["score"],
        "learned_in": FINE_TUNING,
    })
    table.loc[last["ci_low"] > first["ci_high"], "learned_in"] = PRE_TRAINING
    return table.reset_index()[LEARNED_COLUMNS]


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
    table = labelled.groupby(["model", "protocol", "step", "group"])["gain"].agg(
        mean_gain="mean", n="count"
    )
    return table.reset_index()[GROUP_COLUMNS]
