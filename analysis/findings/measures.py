"""The four measures, each computed on the tuned cells of one (model, protocol) under one set
of definitions. Every measure returns its summary row and the detail table behind it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.findings.claims import (
    MIXED,
    NOT_SUPPORTED,
    SUPPORTED,
    UNTESTABLE,
    Definitions,
    Part,
    over_every,
    over_some,
    summary_row,
    untestable,
)
from analysis.findings.resample import percentile_interval, resampled_means, se_from_interval
from analysis.findings.scope import Pair, select_pairs

FORGETTING_RELATIONS = ("out-of-domain", "cross-task")
ALL_TRAINING_SETS = "all"


@dataclass(frozen=True)
class Scope:
    """The cells of one (model, protocol): gains of tuned over base (``analysis.compare``
    columns), degenerate cells left out, the checkpoints in order and their names."""

    model: str
    protocol: str
    cells: pd.DataFrame
    steps: tuple[int, ...]
    labels: dict[int, str]
    shots: int

    def at_training_format(self) -> pd.DataFrame:
        return self.cells[(self.cells["format"] == "default") & (self.cells["shots"] == self.shots)]

    def head(self, definitions: Definitions) -> dict:
        return {"definitions": definitions.name, "model": self.model, "protocol": self.protocol}


def _matrix(rows: pd.DataFrame, steps, column: str = "gain") -> tuple[np.ndarray, np.ndarray]:
    """(values, standard errors) as units x steps, NaN where a unit lacks a checkpoint."""
    if rows.empty:
        return np.empty((0, len(steps))), np.empty((0, len(steps)))
    rows = rows.assign(_se=se_from_interval(rows["ci_low"], rows["ci_high"]))
    values = rows.pivot_table(index="unit", columns="step", values=column, aggfunc="mean")
    ses = rows.pivot_table(index="unit", columns="step", values="_se", aggfunc="mean")
    units = sorted(rows["unit"].unique())
    return (
        values.reindex(index=units, columns=list(steps)).to_numpy(float),
        ses.reindex(index=units, columns=list(steps)).to_numpy(float),
    )


def _means(values: np.ndarray, ses: np.ndarray, definitions: Definitions, seed: int = 0):
    """(mean over units per column, bootstrap draws of it)."""
    if len(values) == 0:
        empty = np.full(values.shape[1], np.nan)
        return empty, np.full((1, values.shape[1]), np.nan)
    means = _nanmean_columns(values)
    draws = resampled_means(values, np.nan_to_num(ses) if definitions.item_noise else None, seed=seed)
    return means, draws


def _nanmean_columns(values: np.ndarray) -> np.ndarray:
    counts = np.isfinite(values).sum(axis=0)
    totals = np.nansum(values, axis=0)
    return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def latent(scope: Scope, definitions: Definitions, fine_tuning: tuple[Pair, ...]):
    """(i) Per checkpoint after the first: mean over the learned-in-fine-tuning pairs of
    gain(checkpoint) − gain(first checkpoint), i.e. how much more the tuned model rose than
    its base. The summary is its value at the last checkpoint."""
    measure = "latent gain: gain(last checkpoint) − gain(first), mean over the datasets learned in fine-tuning"
    rows = select_pairs(scope.at_training_format(), fine_tuning)
    values, ses = _matrix(rows, scope.steps)
    present = [index for index in range(len(scope.steps)) if np.isfinite(values[:, index]).any()]
    if len(present) < 2:
        return _untestable(
            "i", scope, definitions, measure, "fewer than two checkpoints with tuned cells"
        ), pd.DataFrame()
    first = present[0]
    changes = values - values[:, [first]]
    change_ses = np.sqrt(np.square(ses) + np.square(ses[:, [first]]))
    means, draws = _means(changes, change_ses, definitions)
    low, high = percentile_interval(draws)
    parts, detail = [], []
    for index in present[1:]:
        _add_step(
            parts,
            detail,
            scope,
            definitions,
            scope.steps[index],
            (means[index], low[index], high[index]),
            {"latent_gain": means[index]},
            {"n": int(np.isfinite(changes[:, index]).sum())},
        )
    last = present[-1]
    row = summary_row(
        "i", definitions, scope.model, scope.protocol, measure, means[last], low[last], high[last], over_every(parts)
    )
    return row, pd.DataFrame(detail)


def _untestable(finding: str, scope: Scope, definitions: Definitions, measure: str, why: str) -> dict:
    return untestable(finding, definitions, scope.model, scope.protocol, measure, why)


def _add_step(parts, detail, scope, definitions, step, estimate, measured: dict, counts: dict) -> None:
    """One checkpoint's part of a finding (its ``estimate``: value, low, high) and its detail row: the measured
    columns, the interval, the counts behind it and whether it holds."""
    value, low, high = estimate
    holds = definitions.holds(value, low, high)
    parts.append(Part(scope.labels[step], value, low, high, holds))
    row = {**scope.head(definitions), "step": step, **measured, "ci_low": low, "ci_high": high, **counts}
    detail.append({**row, "holds": holds})


def group_gap(scope: Scope, definitions: Definitions, fine_tuning: tuple[Pair, ...], pre_training: tuple[Pair, ...]):
    """(ii) Per checkpoint: mean gain of the pairs learned in fine-tuning, of those learned in
    pre-training, and gap = the first − the second. The summary is the mean gap over the
    checkpoints."""
    measure = (
        "gap: mean gain of the datasets learned in fine-tuning − of those learned in "
        "pre-training, mean over checkpoints"
    )
    cells = scope.at_training_format()
    tuned, pre = select_pairs(cells, fine_tuning), select_pairs(cells, pre_training)
    if tuned.empty or pre.empty:
        missing = "fine-tuning" if tuned.empty else "pre-training"
        why = f"no in-domain cell of a dataset learned in {missing}"
        return _untestable("ii", scope, definitions, measure, why), pd.DataFrame()
    tuned_values, tuned_ses = _matrix(tuned, scope.steps)
    pre_values, pre_ses = _matrix(pre, scope.steps)
    tuned_means, tuned_draws = _means(tuned_values, tuned_ses, definitions, seed=0)
    pre_means, pre_draws = _means(pre_values, pre_ses, definitions, seed=1)
    gaps, gap_draws = tuned_means - pre_means, tuned_draws - pre_draws
    low, high = percentile_interval(gap_draws)
    parts, detail = [], []
    for index, step in enumerate(scope.steps):
        if not np.isfinite(gaps[index]):
            continue
        _add_step(
            parts,
            detail,
            scope,
            definitions,
            step,
            (gaps[index], low[index], high[index]),
            {"gain_fine_tuning": tuned_means[index], "gain_pre_training": pre_means[index], "gap": gaps[index]},
            {
                "n_fine_tuning": int(np.isfinite(tuned_values[:, index]).sum()),
                "n_pre_training": int(np.isfinite(pre_values[:, index]).sum()),
            },
        )
    measured = np.isfinite(gaps)
    with np.errstate(invalid="ignore"):
        overall_draws = np.nanmean(gap_draws[:, measured], axis=1)
    overall_low, overall_high = percentile_interval(overall_draws)
    row = summary_row(
        "ii",
        definitions,
        scope.model,
        scope.protocol,
        measure,
        float(np.mean(gaps[measured])),
        overall_low,
        overall_high,
        over_every(parts),
    )
    return row, pd.DataFrame(detail)


def forgetting(scope: Scope, definitions: Definitions, scopes: dict[str, pd.DataFrame]):
    """(iii) base − tuned, per relation (``scopes``: relation -> its cells with ``unit``) and,
    under the amuro definitions, per training set within it: the mean over checkpoints of the
    mean over units. The claim says tuning *may* forget, so it is supported where any part
    forgets; the summary measures the cells of the parts that forget (all, where none does)."""
    measure = "forgetting: base − tuned, mean over checkpoints and dataset pairs"
    parts, detail = [], []
    for relation, rows in scopes.items():
        if rows.empty:
            continue
        part = _forgetting_part(scope, definitions, rows, relation)
        detail.append(_forgetting_row(scope, definitions, relation, ALL_TRAINING_SETS, rows, part))
        if definitions.name == "paper":
            parts.append((part, rows))
            continue
        for train, group in rows.groupby("train_dataset"):
            by_train = group.assign(unit=group["eval_dataset"])
            train_part = _forgetting_part(scope, definitions, by_train, f"{relation} ({train})")
            parts.append((train_part, group))
            detail.append(_forgetting_row(scope, definitions, relation, train, by_train, train_part))
    verdict = _by_relation(over_some([part for part, _ in parts], "out-of-domain or cross-task"))
    if verdict[0] == UNTESTABLE:
        return _untestable("iii", scope, definitions, measure, verdict[1]), pd.DataFrame(detail)
    forgetting_parts = [(part, rows) for part, rows in parts if part.holds] or parts
    pooled = pd.concat([rows for _, rows in forgetting_parts], ignore_index=True)
    scope_name = _by_relation(("", ", ".join(part.label for part, _ in forgetting_parts)))[1]
    overall = _forgetting_part(scope, definitions, pooled, scope_name)
    return summary_row(
        "iii",
        definitions,
        scope.model,
        scope.protocol,
        f"{measure}, on {scope_name}",
        overall.value,
        overall.ci_low,
        overall.ci_high,
        verdict,
    ), pd.DataFrame(detail)


def _by_relation(verdict: tuple[str, str]) -> tuple[str, str]:
    """``cross-task (mnli), cross-task (paws)`` written ``cross-task (mnli, paws)``."""
    status, where = verdict
    if "(" not in where:
        return verdict
    suffix = " only" if where.endswith(" only") else ""
    trains: dict[str, list[str]] = {}
    for label in where.removesuffix(" only").split(", "):
        relation, _, train = label.partition(" (")
        trains.setdefault(relation, []).append(train.rstrip(")"))
    return status, "; ".join(f"{relation} ({', '.join(names)})" for relation, names in trains.items()) + suffix


def _forgetting_part(scope: Scope, definitions: Definitions, rows: pd.DataFrame, label: str) -> Part:
    rows = rows.assign(forgetting=-rows["gain"], ci_low=-rows["ci_high"], ci_high=-rows["ci_low"])
    values, ses = _matrix(rows, scope.steps, "forgetting")
    means, draws = _means(values, ses, definitions)
    measured = np.isfinite(means)
    with np.errstate(invalid="ignore"):
        low, high = percentile_interval(np.nanmean(draws[:, measured], axis=1))
    value = float(np.mean(means[measured]))
    return Part(label, value, float(low), float(high), definitions.holds(value, low, high))


def _forgetting_row(scope, definitions, relation, train, rows, part: Part) -> dict:
    return {
        **scope.head(definitions),
        "relation": relation,
        "train_dataset": train,
        "forgetting": part.value,
        "ci_low": part.ci_low,
        "ci_high": part.ci_high,
        "n_cells": len(rows),
        "n_forgot": int((rows["ci_high"] < 0).sum()),
        "holds": part.holds,
    }


def sensitivity(scope: Scope, definitions: Definitions, pairs: tuple[Pair, ...] | None):
    """(iv) Per checkpoint: the mean over in-domain pairs of the tuned score's population
    standard deviation across prompt formats. Under the paper's definitions the claim is the
    fall from the checkpoint where it peaks to the last one; under amuro's, the mean over
    pairs of the slope against log10(step) from the checkpoint on which the pair's tuning
    gains."""
    cells = scope.cells[scope.cells["shots"] == scope.shots]
    rows = (
        select_pairs(cells, pairs)
        if pairs
        else cells[cells["relation"] == "in-domain"].assign(
            unit=lambda frame: frame["eval_dataset"] + "/" + frame["train_dataset"]
        )
    )
    tuned, tuned_draws, means = _format_std(rows, scope.steps, "tuned", definitions)
    base_means = _format_std(rows, scope.steps, "base", definitions)[2]
    present = [index for index, mean in enumerate(means) if np.isfinite(mean)]
    low, high = percentile_interval(tuned_draws)
    detail = pd.DataFrame(
        [
            {
                **scope.head(definitions),
                "step": scope.steps[i],
                "tuned_std": means[i],
                "ci_low": low[i],
                "ci_high": high[i],
                "base_std": base_means[i],
                "n": int(np.isfinite(tuned[:, i]).sum()),
            }
            for i in present
        ]
    )
    if len(present) < 2:
        measure = "tuned models' std across prompt formats by checkpoint"
        why = "fewer than two checkpoints with tuned cells in two or more formats"
        return _untestable("iv", scope, definitions, measure, why), detail
    if definitions.name == "paper":
        return _fall_from_peak(scope, definitions, means, tuned_draws, present), detail
    return _slope_in_windows(scope, definitions, tuned, gaining_from(scope, rows)), detail


def _format_std(rows: pd.DataFrame, steps, column: str, definitions: Definitions):
    """(units x steps std across formats, bootstrap draws of the per-step mean, the mean)."""
    if rows.empty:
        empty = np.full((0, len(steps)), np.nan)
        return empty, np.full((1, len(steps)), np.nan), np.full(len(steps), np.nan)
    per_format = rows.groupby(["unit", "step", "format"])[column].mean().reset_index()
    spread = per_format.groupby(["unit", "step"])[column].agg(
        lambda scores: scores.std(ddof=0) if len(scores) >= 2 else np.nan
    )
    values = spread.unstack("step").reindex(columns=list(steps)).to_numpy(float)
    no_noise = Definitions(definitions.name, item_noise=False)
    means, draws = _means(values, np.zeros_like(values), no_noise)
    return values, draws, means


def _fall_from_peak(scope, definitions, means, draws, present):
    peak, last = present[int(np.nanargmax(means[present]))], present[-1]
    measure = (
        f"change of the tuned models' std across formats from its peak "
        f"({scope.labels[scope.steps[peak]]}) to the last checkpoint"
    )
    value = means[last] - means[peak]
    low, high = percentile_interval(draws[:, last] - draws[:, peak])
    holds = definitions.holds(value, low, high, sign=-1)
    if peak == last or not holds:
        verdict = (NOT_SUPPORTED, "nowhere")
    elif peak == present[0]:
        verdict = (SUPPORTED, "every checkpoint")
    else:
        verdict = (MIXED, f"from {scope.labels[scope.steps[peak]]} on")
    return summary_row("iv", definitions, scope.model, scope.protocol, measure, value, low, high, verdict)


def _slope_in_windows(scope, definitions, values, starts):
    """Mean over units of each unit's slope of its std against log10(step), fitted on the
    checkpoints from its window's start on; the interval from a bootstrap over units."""
    measure = (
        "slope of the tuned models' std across formats per tenfold pre-training steps, "
        "each dataset pair from the checkpoint on which its tuning gains"
    )
    slopes, used = [], []
    x_all = np.log10(np.maximum(np.array(scope.steps, dtype=float), 1.0))
    for row, start in zip(values, starts):
        window = [
            i for i in range(len(scope.steps)) if start is not None and scope.steps[i] >= start and np.isfinite(row[i])
        ]
        if len(window) >= 2:
            x = x_all[window]
            slopes.append(float((x - x.mean()) @ (row[window] - row[window].mean()) / np.square(x - x.mean()).sum()))
            used.append(start)
    if not slopes:
        why = "no dataset pair gains from tuning at two or more checkpoints"
        return _untestable("iv", scope, definitions, measure, why)
    slope = float(np.mean(slopes))
    low, high = percentile_interval(resampled_means(np.array(slopes)[:, None])[:, 0])
    holds = definitions.holds(slope, low, high, sign=-1)
    latest = max(used)  # from here on, every pair's tuning gains
    if not holds:
        verdict = (NOT_SUPPORTED, "nowhere")
    elif latest == scope.steps[0]:
        verdict = (SUPPORTED, "every checkpoint")
    else:
        verdict = (MIXED, f"from {scope.labels[latest]} on, where tuning gains")
    return summary_row("iv", definitions, scope.model, scope.protocol, measure, slope, low, high, verdict)


def gaining_from(scope: Scope, rows: pd.DataFrame) -> list[int | None]:
    """For each unit of ``rows`` (sorted by name), the first checkpoint from which the interval of
    its in-domain gain in the training format lies above zero there and at every later
    checkpoint; None when there is none."""
    gains = scope.at_training_format()
    gains = gains.assign(unit=gains["eval_dataset"] + "/" + gains["train_dataset"])
    units = sorted(rows["unit"].unique())
    starts = []
    for unit in units:
        eval_dataset, train = unit.split("#")[0].split("/")
        own = gains[(gains["eval_dataset"] == eval_dataset) & (gains["train_dataset"] == train)]
        lows = own.groupby("step")["ci_low"].mean().sort_index()
        start = None
        for step in reversed(lows.index):
            if lows[step] <= 0:
                break
            start = int(step)
        starts.append(start)
    return starts
