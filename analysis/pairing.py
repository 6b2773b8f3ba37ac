"""Each tuned eval run with the base run it is compared with.

A tuned run is compared with the base run (``tuning == 'none'`` or ``relation == 'base'``)
that shares ``PAIR_KEY`` and scored the same rows (see ``analysis.lineage``). When several
base runs qualify, the one with the tuned run's eval seed is used, else the newest. A
published score (``origin=published``) is only ever compared with another published score.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from analysis.lineage import LineageWarning, digest_conflict, refusal

# The revision pairs a tuned model with its own base where several checkpoints share a step (OLMo-2's
# stage-2 ingredients and main).
PAIR_KEY = ["model", "revision", "step", "eval_dataset", "format", "shots", "protocol", "origin"]
# What names a tuned model's eval cell, beside its prompt (format, shots) and protocol.
TUNED_CELL = ["model", "step", "tuning", "train_dataset", "eval_dataset", "relation"]
MISSING_COLUMNS = TUNED_CELL + ["format", "shots", "protocol", "seed", "train_seed", "run_id", "reason"]
NO_BASE = "no base run at this checkpoint, eval dataset, format, shots and protocol"
NO_TUNED = "no tuned run at this checkpoint, eval dataset, format, shots and protocol"
_BASE_COLUMNS = [
    "run_id",
    "score",
    "score_se",
    "seed",
    "start_time",
    "has_predictions",
    "eval_inputs",
]


def is_base(runs: pd.DataFrame) -> pd.Series:
    return (runs["tuning"] == "none") | (runs["relation"] == "base")


def missing_rows(rows: pd.DataFrame, reason) -> pd.DataFrame:
    return rows.assign(reason=reason)[MISSING_COLUMNS].reset_index(drop=True)


def pair_with_base(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tuned runs with their base run's columns suffixed ``_base``; and the tuned runs that
    have no base run to be compared with. A pair whose runs scored different rows of a
    dataset is refused with a LineageWarning naming both runs."""
    base = runs[is_base(runs)]
    tuned = runs[~is_base(runs)].reset_index(drop=True)
    tuned["_row"] = np.arange(len(tuned))
    candidates = tuned.merge(base[PAIR_KEY + _BASE_COLUMNS], on=PAIR_KEY, how="left", suffixes=("", "_base"))
    candidates["_conflict"] = _conflicts(candidates)
    candidates["_clean"] = candidates["_conflict"].isna()
    candidates["_same_seed"] = (candidates["seed"] == candidates["seed_base"]).fillna(False)
    candidates = candidates.sort_values(
        ["_row", "_clean", "_same_seed", "start_time_base"], ascending=[True, False, False, False]
    ).drop_duplicates("_row")
    has_base = candidates["run_id_base"].notna()
    refused = candidates[has_base & ~candidates["_clean"]]
    reasons = []
    for tuned_run, base_run, conflict in zip(refused["run_id"], refused["run_id_base"], refused["_conflict"]):
        warnings.warn(refusal(tuned_run, base_run, conflict), LineageWarning, stacklevel=3)
        reasons.append(f"base run {base_run} scored other rows of {conflict[0]}")
    paired = has_base & candidates["_clean"]
    pairs = candidates[paired].drop(columns=["_row", "_same_seed", "_conflict", "_clean"])
    pairs = pairs.reset_index(drop=True)
    pairs["has_predictions_base"] = pairs["has_predictions_base"].astype(bool)
    missing = pd.concat(
        [
            missing_rows(candidates[~has_base], NO_BASE),
            missing_rows(refused, reasons),
        ],
        ignore_index=True,
    )
    return pairs, missing


def _conflicts(candidates: pd.DataFrame) -> pd.Series:
    """The lineage conflict of each (tuned, base) candidate pair, None where there is none."""
    conflicts = pd.Series(None, index=candidates.index, dtype=object)
    logged = candidates["eval_inputs"].map(bool) & candidates["eval_inputs_base"].map(
        lambda inputs: isinstance(inputs, tuple) and bool(inputs)
    )
    for index in candidates.index[logged]:
        conflicts.at[index] = digest_conflict(
            candidates.at[index, "eval_inputs"], candidates.at[index, "eval_inputs_base"]
        )
    return conflicts


def unpaired_base(runs: pd.DataFrame) -> pd.DataFrame:
    """Base runs that no tuned run is compared with."""
    base = runs[is_base(runs)]
    tuned_keys = runs.loc[~is_base(runs), PAIR_KEY].drop_duplicates()
    untuned = base.merge(tuned_keys, on=PAIR_KEY, how="left", indicator=True)
    return missing_rows(untuned[untuned["_merge"] == "left_only"], NO_TUNED)
