"""The findings across model sizes: each finding's measure per series, ordered by parameter count
(``amuro.model_params``), as a table, lines for the terminal and a figure of the measure against size.
Only a store of several series with known sizes has them; one series' findings are unchanged."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.figures import _png
from analysis.findings.claims import FINDINGS, STATEMENTS

SIZE_COLUMNS = [
    "finding",
    "definitions",
    "protocol",
    "model",
    "model_params",
    "measure",
    "value",
    "ci_low",
    "ci_high",
    "verdict",
]
_PANEL = (4.2, 3.2)
_DEFINITIONS_ORDER = {"paper": 0, "amuro": 1}  # as the summary lists them
_AXIS_LABELS = {
    "i": "latent gain",
    "ii": "gap: fine-tuning − pre-training group",
    "iii": "forgetting (base − tuned)",
    "iv": "tuned std across formats",
}


def model_sizes(runs: pd.DataFrame) -> dict[str, int]:
    """Each series' parameter count, where its runs carry one."""
    if "model_params" not in runs:
        return {}
    known = runs.dropna(subset=["model_params"]).drop_duplicates("model")
    return {model: int(params) for model, params in zip(known["model"], known["model_params"])}


def across_sizes(summary: pd.DataFrame, sizes: dict[str, int]) -> pd.DataFrame:
    """The summary's rows of the series of known size, by finding, definitions, protocol and size; empty
    unless at least two series have a size."""
    rows = summary[summary["model"].isin(sizes)]
    if rows["model"].nunique() < 2:
        return pd.DataFrame(columns=SIZE_COLUMNS)
    rows = rows.assign(model_params=rows["model"].map(sizes).astype("int64"))
    order = {finding: index for index, finding in enumerate(FINDINGS)}
    rows = rows.assign(_order=rows["finding"].map(order), _definitions=rows["definitions"].map(_DEFINITIONS_ORDER))
    rows = rows.sort_values(["_order", "_definitions", "protocol", "model_params"], kind="stable")
    return rows[SIZE_COLUMNS].reset_index(drop=True)


def params_label(count: int) -> str:
    """``162322944`` -> ``162M``; ``1234`` -> ``1.2K``."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            value = count / scale
            return f"{value:.0f}{unit}" if value >= 10 else f"{value:.1f}{unit}"
    return str(count)


def render_sizes(table: pd.DataFrame) -> str:
    """Per finding and definitions, the measure at each size, smallest first."""
    if table.empty:
        return ""
    lines = ["", "Across model sizes (parameters, series: the measure with its 95% interval, the verdict):"]
    for finding in FINDINGS:
        rows = table[table["finding"] == finding]
        if rows.empty:
            continue
        lines.append(f"({finding}) {STATEMENTS[finding]}")
        for (definitions, protocol), group in rows.groupby(["definitions", "protocol"], sort=False):
            measure = group["measure"].iat[0]
            lines.append(f"  {definitions:<6} [{protocol}] {measure}:")
            for row in group.itertuples(index=False):
                value = "n/a" if not math.isfinite(row.value) else f"{row.value:+.4f}"
                if math.isfinite(row.value) and math.isfinite(row.ci_low) and math.isfinite(row.ci_high):
                    value += f" [{row.ci_low:+.4f}, {row.ci_high:+.4f}]"
                lines.append(
                    f"         {params_label(row.model_params):>6} {row.model}: {value}  {row.verdict.upper()}"
                )
        lines.append("")
    return "\n".join(lines)


def sizes_figure(table: pd.DataFrame) -> bytes:
    """One panel per finding: its measure (with the 95% interval) against parameter count, a line per
    definitions."""
    findings = [finding for finding in FINDINGS if (table["finding"] == finding).any()]
    figure = Figure(figsize=(_PANEL[0] * len(findings), _PANEL[1]), layout="constrained")
    axes = figure.subplots(1, len(findings), squeeze=False)[0]
    for ax, finding in zip(axes, findings):
        rows = table[table["finding"] == finding]
        for (definitions, protocol), group in rows.groupby(["definitions", "protocol"], sort=False):
            low = np.nan_to_num(group["value"] - group["ci_low"])
            high = np.nan_to_num(group["ci_high"] - group["value"])
            ax.errorbar(
                group["model_params"],
                group["value"],
                yerr=np.abs(np.vstack([low, high])),
                marker="o",
                capsize=3,
                label=f"{definitions} [{protocol}]",
            )
        ax.set_xscale("log")
        sizes = rows.drop_duplicates("model_params").sort_values("model_params")
        ax.set_xticks(
            sizes["model_params"],
            [f"{params_label(p)}\n{m.rsplit('/', 1)[-1]}" for p, m in zip(sizes["model_params"], sizes["model"])],
            fontsize=7,
        )
        ax.minorticks_off()
        ax.set_xlim(sizes["model_params"].min() / 1.5, sizes["model_params"].max() * 1.5)
        if rows["value"].isna().all():
            ax.text(0.5, 0.5, "untestable", ha="center", va="center", transform=ax.transAxes)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xlabel("parameters")
        ax.set_ylabel(_AXIS_LABELS[finding], fontsize=8)
        ax.set_title(f"({finding})", fontsize=10)
        ax.legend(fontsize=7)
    figure.suptitle("The four findings' measures against model size")
    return _png(figure)
