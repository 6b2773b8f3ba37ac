"""Tuned against base at the same checkpoint: gains, forgetting and the transfer matrix.

Tuned runs are paired with their base run (``analysis.pairing``); seed replicates (runs that
differ only in ``train_seed``) form one cell: the mean tuned score, the across-seed standard
deviation ``seed_std`` and ``n_seeds``. The 95% interval of a cell's gain comes from the
bootstrap of ``analysis.intervals``, paired item by item against the base run, when every
run of the cell logged ``predictions.json``: ``paired-bootstrap`` for one seed,
``two-level-bootstrap`` (seeds, then items) for several; else from standard errors
(``normal-se``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.intervals import (
    RESAMPLES,
    SEED,
    bootstrap_interval,
    item_differences,
    normal_se_interval,
    replicate_se,
)
from analysis.pairing import (
    MISSING_COLUMNS,
    NO_BASE,
    NO_TUNED,
    PAIR_KEY,
    TUNED_CELL,
    is_base,
    pair_with_base,
    unpaired_base,
)

__all__ = [
    "FORGETTING_COLUMNS",
    "FORGETTING_RELATIONS",
    "GAIN_COLUMNS",
    "MISSING_COLUMNS",
    "NO_BASE",
    "NO_TUNED",
    "PAIR_KEY",
    "Paired",
    "forgetting",
    "gains",
    "is_base",
    "transfer",
]

FORGETTING_RELATIONS = ("out-of-domain", "cross-task")
# One cell: seed replicates share all of it (the base run included).
CELL_COLUMNS = TUNED_CELL + ["task", "format", "shots", "protocol", "seed", "run_id_base"]
# A difference's interval, how it was computed, and the seed replicates behind it.
INTERVAL_COLUMNS = ["ci_low", "ci_high", "ci_method", "n_seeds", "seed_std"]
GAIN_COLUMNS = TUNED_CELL + ["format", "shots", "protocol", "base", "tuned", "gain", "rel_gain", *INTERVAL_COLUMNS]
FORGETTING_COLUMNS = [c if c != "gain" else "forgetting" for c in GAIN_COLUMNS]
TRANSFER_COLUMNS = ["train_task", "eval_task", "mean_gain", "n"]


@dataclass(frozen=True)
class Paired:
    """A comparison table, and the runs that had no partner to compare with."""

    table: pd.DataFrame
    missing: pd.DataFrame


def replicate_cells(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: the mean tuned score over its seed replicates, ``seed_std`` (ddof=1,
    NaN for one seed), ``n_seeds``, the base run's score, and the cell's runs."""
    grouped = pairs.assign(_se2=np.square(pairs["score_se"])).groupby(CELL_COLUMNS, dropna=False, sort=False)
    cells = grouped.agg(
        tuned=("score", "mean"),
        seed_std=("score", "std"),
        n_seeds=("score", "size"),
        mean_se2=("_se2", "mean"),
        base=("score_base", "first"),
        se_base=("score_se_base", "first"),
        base_has_predictions=("has_predictions_base", "first"),
        all_have_predictions=("has_predictions", "all"),
        run_ids=("run_id", tuple),
    )
    return cells.reset_index()


def _intervals(cells, predictions, resamples, seed):
    """(low, high, method) arrays of each cell's gain."""
    gain = (cells["tuned"] - cells["base"]).to_numpy(float)
    se_tuned = replicate_se(cells["n_seeds"], np.square(cells["seed_std"]), cells["mean_se2"])
    low, high = normal_se_interval(gain, se_tuned, cells["se_base"].to_numpy(float))
    method = np.where(np.isfinite(low), "normal-se", "none").astype(object)
    if predictions is None or cells.empty:
        return low, high, method
    both = (cells["all_have_predictions"] & cells["base_has_predictions"]).to_numpy()
    predictions.prefetch(
        [run for runs in cells.loc[both, "run_ids"] for run in runs] + list(cells.loc[both, "run_id_base"])
    )
    for i in np.flatnonzero(both):
        base_table = predictions.get(cells.at[i, "run_id_base"])
        tuned_tables = [predictions.get(run) for run in cells.at[i, "run_ids"]]
        if base_table is None or any(table is None for table in tuned_tables):
            continue
        differences = [item_differences(base_table, table) for table in tuned_tables]
        if all(len(group) for group in differences):
            low[i], high[i] = bootstrap_interval(differences, resamples, seed)
            method[i] = "paired-bootstrap" if len(differences) == 1 else "two-level-bootstrap"
    return low, high, method


def _comparison(pairs, predictions, resamples, seed) -> pd.DataFrame:
    cells = replicate_cells(pairs)
    cells["ci_low"], cells["ci_high"], cells["ci_method"] = _intervals(cells, predictions, resamples, seed)
    cells["gain"] = cells["tuned"] - cells["base"]
    cells["rel_gain"] = cells["gain"] / cells["base"].where(cells["base"] != 0)
    return cells.sort_values(
        ["model", "step", "train_dataset", "eval_dataset", "format", "shots"], kind="stable"
    ).reset_index(drop=True)


def gains(runs: pd.DataFrame, predictions=None, *, resamples: int = RESAMPLES, seed: int = SEED) -> Paired:
    """gain = score(tuned) − score(base) at the same checkpoint, one row per cell.

    ``predictions`` (a ``PredictionTables``) enables bootstrap intervals; without it, or when
    a run of the cell has no prediction table, the interval comes from the standard errors
    (replicates: the across-seed spread, see ``replicate_se``). ``missing`` lists tuned runs
    without a base run (or refused by the lineage check) and base runs without any tuned run.
    """
    pairs, no_base = pair_with_base(runs)
    table = _comparison(pairs, predictions, resamples, seed)[GAIN_COLUMNS]
    return Paired(table, pd.concat([no_base, unpaired_base(runs)], ignore_index=True))


def forgetting(runs: pd.DataFrame, predictions=None, *, resamples: int = RESAMPLES, seed: int = SEED) -> Paired:
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


def training_tasks(runs: pd.DataFrame, cells: pd.DataFrame) -> dict[str, str]:
    """Task family of each training dataset: the task its own eval runs are tagged with;
    failing that, the task of the runs it is in-domain or out-of-domain for (same task by
    definition, but for instruction tuning, whose in-domain suites are of other tasks);
    failing that, the dataset's own name (e.g. an instruction-tuning mixture)."""
    tagged = dataset_tasks(runs)
    instruction_tuned = cells["tuning"].str.startswith("it")
    same_task = cells[
        (cells["relation"] == "out-of-domain") | ((cells["relation"] == "in-domain") & ~instruction_tuned)
    ]
    inferred = dataset_tasks(same_task.assign(eval_dataset=same_task["train_dataset"]))
    return {train: tagged.get(train) or inferred.get(train) or train for train in cells["train_dataset"].unique()}


def transfer(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean gain by (task tuned on) x (task evaluated), over all checkpoints, formats, shots;
    ``n`` counts cells (seed replicates count once)."""
    pairs, _ = pair_with_base(runs)
    cells = replicate_cells(pairs)
    frame = pd.DataFrame(
        {
            "train_task": cells["train_dataset"].map(training_tasks(runs, cells)),
            "eval_task": cells["task"],
            "gain": cells["tuned"] - cells["base"],
        }
    )
    table = frame.groupby(["train_task", "eval_task"])["gain"].agg(mean_gain="mean", n="count")
    return table.reset_index()[TRANSFER_COLUMNS]
