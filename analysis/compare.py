"""Tuned against base at the same checkpoint: gains, forgetting and the transfer matrix.

A tuned eval run is compared with the base run (``tuning == 'none'`` or ``relation ==
'base'``) that shares ``PAIR_KEY``. When several base runs qualify (several seeds), the one
with the tuned run's seed is used, else the newest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.intervals import (
    RESAMPLES, SEED, item_differences, normal_se_interval, paired_bootstrap,
)

PAIR_KEY = ["model", "step", "eval_dataset", "format", "shots"]
FORGETTING_RELATIONS = ("out-of-domain", "cross-task")
GAIN_COLUMNS = [
    "model", "step", "train_dataset", "eval_dataset", "relation", "format", "shots",
    "base", "tuned", "gain", "rel_gain", "ci_low", "ci_high", "ci_method",
]
FORGETTING_COLUMNS = [c if c != "gain" else "forgetting" for c in GAIN_COLUMNS]
MISSING_COLUMNS = [
    "model", "step", "tuning", "train_dataset", "eval_dataset", "relation", "format", "shots",
    "seed", "run_id", "reason",
]
TRANSFER_COLUMNS = ["train_task", "eval_task", "mean_gain", "n"]
NO_BASE = "no base run at this checkpoint, eval dataset, format and shots"
NO_TUNED = "no tuned run at this checkpoint, eval dataset, format and shots"


@dataclass(frozen=True)
class Paired:
    """A comparison table, and the runs that had no partner to compare with."""

    table: pd.DataFrame
    missing: pd.DataFrame


def is_base(runs: pd.DataFrame) -> pd.Series:
    return (runs["tuning"] == "none") | (runs["relation"] == "base")


def pair_with_base(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tuned runs with their base run's columns suffixed ``_base``; and the tuned runs that
    have no base run."""
    base = runs[is_base(runs)]
    tuned = runs[~is_base(runs)].reset_index(drop=True)
    tuned["_row"] = np.arange(len(tuned))
    base_columns = ["run_id", "score", "score_se", "seed", "start_time", "has_predictions"]
    candidates = tuned.merge(
        base[PAIR_KEY + base_columns], on=PAIR_KEY, how="left", suffixes=("", "_base")
    )
    candidates["_same_seed"] = (candidates["seed"] == candidates["seed_base"]).fillna(False)
    candidates = candidates.sort_values(
        ["_row", "_same_seed", "start_time_base"], ascending=[True, False, False]
    ).drop_duplicates("_row")
    has_base = candidates["run_id_base"].notna()
    pairs = candidates[has_base].drop(columns=["_row", "_same_seed"]).reset_index(drop=True)
    pairs["has_predictions_base"] = pairs["has_predictions_base"].astype(bool)
    return pairs, _missing(candidates[~has_base], NO_BASE)


def _missing(rows: pd.DataFrame, reason: str) -> pd.DataFrame:
    return rows.assign(reason=reason)[MISSING_COLUMNS].reset_index(drop=True)


def _gain_intervals(pairs, predictions, resamples, seed):
    """Interval of tuned − base per pair: paired bootstrap when both runs' prediction tables
    exist, else from the two standard errors. Returns (low, high, method) arrays."""
    gain = (pairs["score"] - pairs["score_base"]).to_numpy(float)
    low, high = normal_se_interval(
        gain, pairs["score_se"].to_numpy(float), pairs["score_se_base"].to_numpy(float)
    )
    method = np.where(np.isfinite(low), "normal-se", "none").astype(object)
    if predictions is None or pairs.empty:
        return low, high, method
    both = (pairs["has_predictions"] & pairs["has_predictions_base"]).to_numpy()
    predictions.prefetch(
        list(pairs.loc[both, "run_id"]) + list(pairs.loc[both, "run_id_base"])
    )
    for i in np.flatnonzero(both):
        base_table = predictions.get(pairs.at[i, "run_id_base"])
        tuned_table = predictions.get(pairs.at[i, "run_id"])
        if base_table is None or tuned_table is None:
            continue
        differences = item_differences(base_table, tuned_table)
        if len(differences):
            low[i], high[i] = paired_bootstrap(differences, resamples, seed)
            method[i] = "paired-bootstrap"
    return low, high, method


def _comparison(pairs, predictions, resamples, seed) -> pd.DataFrame:
    low, high, method = _gain_intervals(pairs, predictions, resamples, seed)
    table = pairs.rename(columns={"score_base": "base", "score": "tuned"})
    table["gain"] = table["tuned"] - table["base"]
    table["rel_gain"] = table["gain"] / table["base"].where(table["base"] != 0)
    table["ci_low"], table["ci_high"], table["ci_method"] = low, high, method
    return table.sort_values(
        ["model", "step", "train_dataset", "eval_dataset", "format", "shots"], kind="stable"
    ).reset_index(drop=True)


def gains(
    runs: pd.DataFrame, predictions=None, *, resamples: int = RESAMPLES, seed: int = SEED
) -> Paired:
    """gain = score(tuned) − score(base) at the same checkpoint, for every tuned run.

    ``predictions`` (a ``PredictionTables``) enables paired-bootstrap intervals; without it,
    or when a run has no prediction table, the interval comes from the standard errors.
    ``missing`` lists tuned runs without a base run and base runs without any tuned run.
    """
    pairs, no_base = pair_with_base(runs)
    base = runs[is_base(runs)]
    tuned_keys = runs.loc[~is_base(runs), PAIR_KEY].drop_duplicates()
    untuned = base.merge(tuned_keys, on=PAIR_KEY, how="left", indicator=True)
    no_tuned = _missing(untuned[untuned["_merge"] == "left_only"], NO_TUNED)
    table = _comparison(pairs, predictions, resamples, seed)[GAIN_COLUMNS]
    return Paired(table, pd.concat([no_base, no_tuned], ignore_index=True))


def forgetting(
    runs: pd.DataFrame, predictions=None, *, resamples: int = RESAMPLES, seed: int = SEED
) -> Paired:
    """forgetting = score(base) − score(tuned) on out-of-domain and cross-task runs; positive
    means tuning lost ability the checkpoint had. ``rel_gain`` stays gain / base (= −forgetting
    / base); ``ci_low``/``ci_high`` bound the forgetting."""
    scope = is_base(runs) | runs["relation"].isin(FORGETTING_RELATIONS)
    pairs, no_base = pair_with_base(runs[scope])
    table = _comparison(pairs, predictions, resamples, seed)
    table["forgetting"] = table["base"] - table["tuned"]
    table["ci_low"], table["ci_high"] = -table["ci_high"], -table["ci_low"]
    return Paired(table[FORGETTING_COLUMNS], no_base)


def dataset_tasks(runs: pd.DataFrame) -> dict[str, str]:
    """Task family of each dataset, as its eval runs tag it."""
    tagged = runs.loc[runs["task"] != "", ["eval_dataset", "task"]]
    return tagged.groupby("eval_dataset")["task"].agg(lambda tasks: tasks.mode().iat[0]).to_dict()


def training_tasks(runs: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, str]:
    """Task family of each training dataset: the task its own eval runs are tagged with;
    failing that, the task of the runs it is in-domain or out-of-domain for (same task by
    definition); failing that, the dataset's own name (e.g. an instruction-tuning mixture)."""
    tagged = dataset_tasks(runs)
    same_task = pairs[pairs["relation"].isin(["in-domain", "out-of-domain"])]
    inferred = dataset_tasks(same_task.assign(eval_dataset=same_task["train_dataset"]))
    return {
        train: tagged.get(train) or inferred.get(train) or train
        for train in pairs["train_dataset"].unique()
    }


def transfer(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean gain by (task tuned on) x (task evaluated), over all checkpoints, formats, shots."""
    pairs, _ = pair_with_base(runs)
    frame = pd.DataFrame({
        "train_task": pairs["train_dataset"].map(training_tasks(runs, pairs)),
        "eval_task": pairs["task"],
        "gain": pairs["score"] - pairs["score_base"],
    })
    table = frame.groupby(["train_task", "eval_task"])["gain"].agg(mean_gain="mean", n="count")
    return table.reset_index()[TRANSFER_COLUMNS]
