"""The study's views as PNG images (bytes), drawn without a display.

Each function takes the runs frame or an analysis table and returns PNG bytes, so the same
image can be embedded in the HTML report and logged as an artifact.
"""

from __future__ import annotations

import functools
import io
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis.pairing import is_base  # noqa: E402

_COLUMNS = 3
_PANEL = (4.2, 3.0)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _panels(count: int) -> tuple[Figure, list]:
    columns = min(_COLUMNS, max(count, 1))
    rows = max(1, math.ceil(count / columns))
    figure = Figure(figsize=(_PANEL[0] * columns, _PANEL[1] * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[count:]:
        unused.set_visible(False)
    return figure, axes


def _axes(size: tuple[float, float]):
    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.subplots()


def _empty(title: str) -> bytes:
    figure = Figure(figsize=_PANEL)
    axes = figure.subplots()
    axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    axes.set_title(title)
    axes.set_axis_off()
    return _png(figure)


def _unless_empty(title: str):
    """A figure function of one table: an empty table draws ``title`` over "no data"; otherwise the function
    draws, given ``title`` as a keyword."""

    def decorate(draw):
        @functools.wraps(draw)
        def figure(table: pd.DataFrame, *args, **kwargs) -> bytes:
            return _empty(title) if table.empty else draw(table, *args, title=title, **kwargs)

        return figure

    return decorate


def _label(ax, x: str, y: str, title: str) -> None:
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)


def _panel_title(model: str, dataset: str, several_models: bool) -> str:
    return f"{model.rsplit('/', 1)[-1]} · {dataset}" if several_models else dataset


@_unless_empty("score by pre-training step")
def score_by_step(runs: pd.DataFrame, prompt_format: str = "default", *, title: str) -> bytes:
    """Score against pre-training step, one panel per (model, eval dataset): the base line and
    one line per tuned variant, with 95% interval bands. One prompt format (all formats
    when that one was never evaluated); seeds and shot counts averaged."""
    if (runs["format"] == prompt_format).any():
        runs = runs[runs["format"] == prompt_format]
    lines = runs.assign(line=np.where(is_base(runs), "base", runs["tuning"] + " on " + runs["train_dataset"]))
    panels = list(lines.groupby(["model", "eval_dataset"], sort=True))
    figure, axes = _panels(len(panels))
    several_models = lines["model"].nunique() > 1
    # One colour per tuned variant across all panels.
    tuned = sorted(set(lines["line"]) - {"base"})
    palette = matplotlib.colormaps["tab10"].colors
    colours = {"base": "black", **{line: palette[i % len(palette)] for i, line in enumerate(tuned)}}
    for ax, ((model, dataset), rows) in zip(axes, panels):
        # Seed replicates: their mean, the mean interval, and the across-seed spread.
        series = rows.groupby(["line", "step"]).agg(
            score=("score", "mean"),
            score_ci_low=("score_ci_low", "mean"),
            score_ci_high=("score_ci_high", "mean"),
            seed_std=("score", "std"),
        )
        for line, points in series.groupby(level="line", sort=False):
            steps = points.index.get_level_values("step")
            ax.plot(
                steps,
                points["score"],
                marker="o",
                markersize=3,
                label=line,
                color=colours[line],
                linewidth=2 if line == "base" else 1.5,
            )
            ax.fill_between(
                steps, points["score_ci_low"], points["score_ci_high"], color=colours[line], alpha=0.15, linewidth=0
            )
            if points["seed_std"].notna().any():
                ax.errorbar(
                    steps,
                    points["score"],
                    yerr=points["seed_std"].fillna(0),
                    fmt="none",
                    ecolor=colours[line],
                    capsize=2,
                    linewidth=1,
                )
        ax.set_title(_panel_title(model, dataset, several_models), fontsize=10)
        ax.set_xlabel("pre-training step")
        ax.set_ylabel(rows["metric"].iloc[0] or "score")
        ax.legend(fontsize=7)
    figure.suptitle(f"{title} ({prompt_format} format)")
    return _png(figure)


@_unless_empty("mean gain of fine-tuning per checkpoint")
def gain_by_group(group_table: pd.DataFrame, *, title: str) -> bytes:
    """Mean gain per checkpoint for datasets learned in pre-training vs in fine-tuning."""
    figure, ax = _axes((6, 3.6))
    several_models = group_table["model"].nunique() > 1
    for (model, group), rows in group_table.groupby(["model", "group"]):
        label = f"learned in {group}"
        if several_models:
            label = f"{model.rsplit('/', 1)[-1]} · {label}"
        ax.plot(rows["step"], rows["mean_gain"], marker="o", label=label)
    ax.axhline(0, color="grey", linewidth=0.8)
    _label(ax, "pre-training step", "mean gain", title)
    ax.legend(fontsize=8)
    return _png(figure)


@_unless_empty("transfer: mean gain")
def transfer_heatmap(transfer_table: pd.DataFrame, *, title: str) -> bytes:
    """Mean gain by (task tuned on) x (task evaluated), red below zero, blue above."""
    matrix = transfer_table.pivot(index="train_task", columns="eval_task", values="mean_gain")
    limit = float(np.nanmax(np.abs(matrix.to_numpy()))) or 1.0
    figure = Figure(figsize=(1.2 * matrix.shape[1] + 2.5, 0.8 * matrix.shape[0] + 1.8), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(matrix.to_numpy(), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=30, ha="right")
    ax.set_yticks(range(matrix.shape[0]), matrix.index)
    for (row, column), value in np.ndenumerate(matrix.to_numpy()):
        if np.isfinite(value):
            ax.text(column, row, f"{value:+.3f}", ha="center", va="center", fontsize=8)
    _label(ax, "task evaluated", "task tuned on", title)
    figure.colorbar(image, ax=ax, shrink=0.8)
    return _png(figure)


@_unless_empty("score by prompt format, before and after tuning")
def score_by_format(runs: pd.DataFrame, *, title: str) -> bytes:
    """Mean score per prompt format before (base) and after tuning, one panel per eval
    dataset, averaged over checkpoints, shots and tuned variants."""
    stage = np.where(is_base(runs), "before tuning", "after tuning")
    means = (
        runs.assign(stage=stage)
        .groupby(["eval_dataset", "format", "stage"])["score"]
        .mean()
        .unstack("stage")
        .reindex(columns=["before tuning", "after tuning"])
    )
    datasets = means.index.get_level_values("eval_dataset").unique()
    figure, axes = _panels(len(datasets))
    width = 0.38
    for ax, dataset in zip(axes, datasets):
        table = means.loc[dataset]
        positions = np.arange(len(table))
        for offset, column in ((-width / 2, "before tuning"), (width / 2, "after tuning")):
            ax.bar(positions + offset, table[column].fillna(0), width, label=column)
        ax.set_xticks(positions, table.index)
        ax.set_title(dataset, fontsize=10)
        ax.set_ylabel("mean score")
        ax.legend(fontsize=7)
    figure.suptitle(title)
    return _png(figure)


@_unless_empty("your scores against the published ones")
def yours_vs_paper(shared: pd.DataFrame, *, title: str) -> bytes:
    """Each shared cell's score against the paper's, base and tuned, with the diagonal."""
    figure, ax = _axes((5, 4.6))
    for tuned, rows in shared.groupby(shared["tuning"] != "none"):
        ax.errorbar(
            rows["paper"],
            rows["yours"],
            yerr=rows["seed_std"].fillna(0),
            fmt="o",
            markersize=4,
            capsize=2,
            label="tuned" if tuned else "base",
        )
    ax.axline((0, 0), slope=1, color="grey", linewidth=0.8)
    _label(ax, "published score", "your score", title)
    ax.legend(fontsize=8)
    return _png(figure)
