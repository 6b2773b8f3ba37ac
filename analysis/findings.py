"""The study's four findings, each measured on one set of eval runs.

(i)   latent gains: later checkpoints gain after tuning more than their base scores rose;
(ii)  datasets learned in fine-tuning gain more from tuning than those learned in pre-training;
(iii) tuning forgets: base − tuned on out-of-domain and cross-task data;
(iv)  prompt sensitivity after tuning falls with pre-training.

Each function returns a detail table; :func:`summary` reduces all four to one number each.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.compare import forgetting, gains
from analysis.learned import FINE_TUNING, PRE_TRAINING, gains_by_group, learned
from analysis.sensitivity import sensitivity

SERIES = ["model", "tuning", "train_dataset", "eval_dataset", "format", "shots", "protocol"]
LATENT_COLUMNS = SERIES + [
    "first_step", "last_step", "base_change", "tuned_change", "latent_gain",
]
GROUP_GAP_COLUMNS = ["model", "protocol", "step", "gain_fine_tuning", "gain_pre_training", "gap"]
FORGETTING_SUMMARY_COLUMNS = [
    "model", "protocol", "train_dataset", "relation", "mean_forgetting", "n", "n_forgot",
]
SENSITIVITY_TREND_COLUMNS = ["model", "protocol", "step", "tuned_std", "base_std"]
SUMMARY_COLUMNS = ["finding", "measure", "value"]
# The columns that identify a row of each finding's table (the rest are measured).
KEYS = {
    "latent": SERIES,
    "groups": ["model", "protocol", "step"],
    "forgetting": ["model", "protocol", "train_dataset", "relation"],
    "sensitivity": ["model", "protocol", "step"],
}


def latent_gains(runs: pd.DataFrame) -> pd.DataFrame:
    """Per in-domain series (tuned on D, scored on an in-domain set), from its first to its
    last paired checkpoint: how much the base score rose, how much the tuned score rose, and
    ``latent_gain`` = tuned_change − base_change (positive: pre-training helped in a way only
    tuning shows)."""
    table = gains(runs).table
    table = table[table["relation"] == "in-domain"].sort_values("step", kind="stable")
    grouped = table.groupby(SERIES)
    first, last = grouped.first(), grouped.last()
    result = pd.DataFrame({
        "first_step": first["step"], "last_step": last["step"],
        "base_change": last["base"] - first["base"],
        "tuned_change": last["tuned"] - first["tuned"],
    })
    result["latent_gain"] = result["tuned_change"] - result["base_change"]
    result = result[result["first_step"] != result["last_step"]]
    return result.reset_index().reindex(columns=LATENT_COLUMNS)


def group_gap(runs: pd.DataFrame) -> pd.DataFrame:
    """Per checkpoint: mean in-domain gain of the datasets learned in fine-tuning, of those
    learned in pre-training, and ``gap`` = the first − the second."""
    groups = gains_by_group(gains(runs).table, learned(runs))
    wide = groups.pivot_table(index=["model", "protocol", "step"], columns="group",
                              values="mean_gain")
    wide = wide.reindex(columns=[FINE_TUNING, PRE_TRAINING])
    result = pd.DataFrame({
        "gain_fine_tuning": wide[FINE_TUNING], "gain_pre_training": wide[PRE_TRAINING],
    })
    result["gap"] = result["gain_fine_tuning"] - result["gain_pre_training"]
    return result.reset_index().reindex(columns=GROUP_GAP_COLUMNS)


def forgetting_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per training set and relation (out-of-domain, cross-task): mean forgetting, cells, and
    cells whose forgetting interval lies above zero."""
    table = forgetting(runs).table.assign(
        forgot=lambda frame: frame["ci_low"] > 0
    )
    grouped = table.groupby(["model", "protocol", "train_dataset", "relation"])
    result = grouped.agg(mean_forgetting=("forgetting", "mean"), n=("forgetting", "count"),
                         n_forgot=("forgot", "sum"))
    return result.reset_index().reindex(columns=FORGETTING_SUMMARY_COLUMNS)


def sensitivity_trend(runs: pd.DataFrame) -> pd.DataFrame:
    """Per checkpoint: mean standard deviation of the score across prompt formats, of tuned
    cells and of base cells (cells scored in at least two formats)."""
    table = sensitivity(runs)
    table = table[table["n_formats"] >= 2].assign(tuned=lambda frame: frame["tuning"] != "none")
    means = table.groupby(["model", "protocol", "step", "tuned"])["std"].mean().unstack("tuned")
    means = means.reindex(columns=[True, False])
    result = pd.DataFrame({"tuned_std": means[True], "base_std": means[False]})
    return result.reset_index().reindex(columns=SENSITIVITY_TREND_COLUMNS)


def _first_to_last(trend: pd.DataFrame, column: str) -> float:
    """Mean over models of column(last step) − column(first step), steps where it is known."""
    changes = []
    for _, rows in trend.dropna(subset=[column]).sort_values("step").groupby(["model", "protocol"]):
        if len(rows) > 1:
            changes.append(rows[column].iloc[-1] - rows[column].iloc[0])
    return float(np.mean(changes)) if changes else float("nan")


def all_findings(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {
        "latent": latent_gains(runs), "groups": group_gap(runs),
        "forgetting": forgetting_summary(runs), "sensitivity": sensitivity_trend(runs),
    }


def summary(findings: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One number per finding, from the tables of :func:`all_findings`."""
    rows = [
        ("(i) latent gains of later checkpoints",
         "mean latent_gain: tuned rise − base rise, first to last checkpoint (in-domain)",
         findings["latent"]["latent_gain"].mean()),
        ("(ii) learned in fine-tuning gains more",
         "mean gap: gain(learned in fine-tuning) − gain(learned in pre-training)",
         findings["groups"]["gap"].mean()),
        ("(iii) forgetting",
         "mean forgetting (base − tuned) on out-of-domain and cross-task cells",
         _weighted_mean(findings["forgetting"])),
        ("(iv) prompt sensitivity falls with pre-training",
         "change of the tuned models' std across formats, first to last checkpoint",
         _first_to_last(findings["sensitivity"], "tuned_std")),
    ]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _weighted_mean(table: pd.DataFrame) -> float:
    if table.empty or table["n"].sum() == 0:
        return float("nan")
    return float((table["mean_forgetting"] * table["n"]).sum() / table["n"].sum())
