"""The findings on a terminal: each statement, then one line per definitions (and model)."""

from __future__ import annotations

import math

import pandas as pd

from analysis.findings.claims import FINDINGS, STATEMENTS


def render_summary(summary: pd.DataFrame) -> str:
    if summary.empty:
        return "(no findings)\n"
    several = summary[["model", "protocol"]].drop_duplicates().shape[0] > 1
    lines = []
    for finding in FINDINGS:
        rows = summary[summary["finding"] == finding]
        if rows.empty:
            continue
        lines.append(f"({finding}) {STATEMENTS[finding]}")
        for row in rows.itertuples(index=False):
            who = f"{row.model} [{row.protocol}] " if several else ""
            lines.append(f"  {row.definitions:<6} {who}{row.verdict.upper()}: {row.where}")
            lines.append(f"         {row.measure} = {_interval(row.value, row.ci_low, row.ci_high)}")
        lines.append("")
    return "\n".join(lines)


def render_degenerate(degenerate: pd.DataFrame) -> str:
    """One line per dataset: how many of its cells are degenerate, and why."""
    lines = []
    for (model, dataset), rows in degenerate.groupby(["model", "eval_dataset"], sort=True):
        lines.append(f"  {dataset} ({model}, {len(rows)} cell(s)): {rows['reason'].iat[0]}")
    return "\n".join(lines)


def _interval(value: float, low: float, high: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{value:+.4f}"
    return f"{value:+.4f}  95% CI [{low:+.4f}, {high:+.4f}]"
