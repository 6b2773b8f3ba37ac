"""A reproduction beside the published results: the cells both hold, and the study's four
findings measured on each side over those cells.

Cells pair on ``SHARED_KEY`` (not on the protocol: the comparison is how far a run of
either protocol lands from the paper; the ``protocol`` column says which it was). Your side
averages seed replicates, and uses ``score_ci_mid`` (the midpoint of the bootstrap
interval, the figure the study reports) where a run logged it, else ``score``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.compare import INTERVAL_COLUMNS
from analysis.findings import (
    DETAILS,
    Findings,
    FindingsError,
    FindingsSettings,
    measure_findings,
)
from analysis.intervals import normal_se_interval, replicate_se

SHARED_KEY = ["model", "step", "tuning", "train_dataset", "eval_dataset", "format", "shots"]
SHARED_COLUMNS = SHARED_KEY + ["protocol", "yours", "paper", "difference", *INTERVAL_COLUMNS]
SIDES = ("yours", "paper")
SUMMARY_COLUMNS = ["finding", "definitions"] + [
    f"{column}_{side}" for column in ("verdict", "where", "value", "ci_low", "ci_high", "measure") for side in SIDES
]
DETAIL_KEYS = {
    "latent": ["definitions", "step"],
    "groups": ["definitions", "step"],
    "forgetting": ["definitions", "relation", "train_dataset"],
    "sensitivity": ["definitions", "step"],
}


@dataclass(frozen=True)
class Beside:
    shared: pd.DataFrame  # SHARED_COLUMNS, one row per shared cell (and protocol of yours)
    summary: pd.DataFrame  # SUMMARY_COLUMNS: each finding's value and verdict on both sides
    details: dict[str, pd.DataFrame]  # finding name -> both sides' tables, side by side


def _cells(runs: pd.DataFrame) -> pd.DataFrame:
    scored = runs.assign(_value=runs["score_ci_mid"].fillna(runs["score"]), _se2=np.square(runs["score_se"]))
    grouped = scored.groupby(SHARED_KEY + ["protocol"], dropna=False)
    cells = grouped.agg(
        score=("_value", "mean"), seed_std=("_value", "std"), n_seeds=("_value", "size"), mean_se2=("_se2", "mean")
    ).reset_index()
    cells["se"] = replicate_se(cells["n_seeds"], np.square(cells["seed_std"]), cells["mean_se2"])
    return cells


def shared_cells(yours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Per cell both sides scored: both scores, yours − paper and its 95% normal interval."""
    own, published = _cells(yours), _cells(paper).drop(columns="protocol")
    table = own.merge(published, on=SHARED_KEY, suffixes=("_yours", "_paper"))
    table = table.rename(
        columns={
            "score_yours": "yours",
            "score_paper": "paper",
            "n_seeds_yours": "n_seeds",
            "seed_std_yours": "seed_std",
        }
    )
    table["difference"] = table["yours"] - table["paper"]
    table["ci_low"], table["ci_high"] = normal_se_interval(
        table["difference"].to_numpy(float),
        table["se_yours"].to_numpy(float),
        table["se_paper"].to_numpy(float),
    )
    table["ci_method"] = np.where(np.isfinite(table["ci_low"]), "normal-se", "none")
    return table.sort_values(SHARED_KEY, kind="stable").reset_index(drop=True)[SHARED_COLUMNS]


def _restrict(runs: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    return runs.merge(keys.drop_duplicates(), on=SHARED_KEY, how="inner")


def beside(
    yours: pd.DataFrame, paper: pd.DataFrame, settings: FindingsSettings = FindingsSettings(), predictions=None
) -> Beside:
    """The shared cells, and the four findings on each side over the shared cells only, so
    both measure the same checkpoints, datasets, formats and shots."""
    shared = shared_cells(yours, paper)
    keys = shared[SHARED_KEY]
    sides = {"yours": _restrict(yours, keys), "paper": _restrict(paper, keys)}
    measured = {
        side: _measure(runs, settings, predictions if side == "yours" else None) for side, runs in sides.items()
    }
    summary = _side_by_side(measured["yours"].summary, measured["paper"].summary, ["finding", "definitions"])
    summary = summary.reindex(columns=SUMMARY_COLUMNS)
    details = {
        name: _side_by_side(
            measured["yours"].details[name],
            measured["paper"].details[name],
            [
                column
                for column in DETAIL_KEYS[name]
                if column in set(measured["yours"].details[name].columns) | set(measured["paper"].details[name].columns)
            ],
        )
        for name in DETAILS
    }
    return Beside(shared, summary, details)


def _measure(runs: pd.DataFrame, settings: FindingsSettings, predictions) -> Findings:
    try:
        return measure_findings(runs, settings, predictions)
    except FindingsError:  # nothing tuned on this side: every finding untestable
        return Findings(
            pd.DataFrame(columns=SUMMARY_COLUMNS), {name: pd.DataFrame() for name in DETAILS}, pd.DataFrame()
        )


def _side_by_side(own: pd.DataFrame, published: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The two sides' tables merged on ``key`` (not on model or protocol), the measured
    columns suffixed ``_yours`` / ``_paper``."""
    if own.empty and published.empty:
        return pd.DataFrame()
    ignored = {"model", "protocol"}
    columns = [
        c for c in dict.fromkeys(list(own.columns) + list(published.columns)) if c not in key and c not in ignored
    ]
    own = own.reindex(columns=key + columns).astype({c: object for c in key})
    published = published.reindex(columns=key + columns).astype({c: object for c in key})
    table = own.merge(published, on=key, how="outer", suffixes=("_yours", "_paper"), sort=False)
    # An outer merge sorts its keys; keep the order the findings come in instead.
    order = {
        k: i for i, k in enumerate(dict.fromkeys(map(tuple, pd.concat([own[key], published[key]]).to_numpy().tolist())))
    }
    table = table.iloc[sorted(range(len(table)), key=lambda i: order[tuple(table.iloc[i][key])])]
    ordered = key + [f"{c}_{side}" for c in columns for side in SIDES]
    return table.reindex(columns=ordered).reset_index(drop=True)
