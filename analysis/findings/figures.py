"""Each finding's figure as the study draws it, one panel per definitions (and model):
latent gain and gain by group per checkpoint, forgetting per training set split by relation,
sensitivity across formats per checkpoint."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.figures import _empty, _png

_PANEL = (5.2, 3.4)
_TITLES = {
    "latent": "(i) latent gain: gain − gain at the first checkpoint",
    "groups": "(ii) mean gain by group per checkpoint",
    "forgetting": "(iii) forgetting (base − tuned) per training set",
    "sensitivity": "(iv) std of the score across prompt formats",
}


def finding_figures(details: dict[str, pd.DataFrame]) -> dict[str, bytes]:
    """File name -> PNG of each finding's figure."""
    draw = {"latent": _latent, "groups": _groups, "forgetting": _forgetting, "sensitivity": _sensitivity}
    return {f"finding-{name}.png": _figure(details.get(name, pd.DataFrame()), name, draw[name]) for name in draw}


def _figure(table: pd.DataFrame, name: str, draw) -> bytes:
    if table.empty:
        return _empty(_TITLES[name])
    panels = list(table.groupby(["definitions", "model", "protocol"], sort=False))
    figure = Figure(figsize=(_PANEL[0] * len(panels), _PANEL[1]), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    several_models = table["model"].nunique() > 1
    for ax, ((definitions, model, protocol), rows) in zip(axes, panels):
        draw(ax, rows)
        ax.axhline(0, color="grey", linewidth=0.8)
        title = f"{definitions} definitions"
        ax.set_title(f"{model.rsplit('/', 1)[-1]} · {title}" if several_models else title, fontsize=10)
    figure.suptitle(_TITLES[name])
    return _png(figure)


def _checkpoint_axis(ax, steps) -> np.ndarray:
    positions = np.arange(len(steps))
    ax.set_xticks(positions, [str(step) for step in steps], rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("pre-training step")
    return positions


def _error(rows: pd.DataFrame, column: str) -> np.ndarray:
    return np.abs(np.vstack([rows[column] - rows["ci_low"], rows["ci_high"] - rows[column]]))


def _latent(ax, rows: pd.DataFrame) -> None:
    positions = _checkpoint_axis(ax, rows["step"])
    ax.plot(positions, rows["latent_gain"], marker="o")
    ax.fill_between(positions, rows["ci_low"], rows["ci_high"], alpha=0.25)
    ax.set_ylabel("latent gain")


def _groups(ax, rows: pd.DataFrame) -> None:
    positions = _checkpoint_axis(ax, rows["step"])
    width = 0.38
    ax.bar(positions - width / 2, rows["gain_fine_tuning"], width, label="learned in fine-tuning")
    ax.bar(positions + width / 2, rows["gain_pre_training"], width, label="learned in pre-training")
    ax.set_ylabel("mean gain (tuned − base)")
    ax.legend(fontsize=7)


def _forgetting(ax, rows: pd.DataFrame) -> None:
    per_train = rows[rows["train_dataset"] != "all"]
    rows = per_train if not per_train.empty else rows
    trains = sorted(rows["train_dataset"].unique())
    relations = sorted(rows["relation"].unique())
    width = 0.8 / max(len(relations), 1)
    for index, relation in enumerate(relations):
        own = rows[rows["relation"] == relation].set_index("train_dataset").reindex(trains)
        offsets = np.arange(len(trains)) + (index - (len(relations) - 1) / 2) * width
        ax.bar(
            offsets,
            own["forgetting"].fillna(0),
            width,
            label=relation,
            yerr=np.nan_to_num(_error(own.reset_index(), "forgetting")),
            capsize=2,
        )
    ax.set_xticks(np.arange(len(trains)), trains, rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("tuned on")
    ax.set_ylabel("forgetting")
    ax.legend(fontsize=7)


def _sensitivity(ax, rows: pd.DataFrame) -> None:
    positions = _checkpoint_axis(ax, rows["step"])
    ax.plot(positions, rows["tuned_std"], marker="o", label="tuned")
    ax.fill_between(positions, rows["ci_low"], rows["ci_high"], alpha=0.25)
    ax.plot(positions, rows["base_std"], marker="s", label="base")
    ax.set_ylabel("std across formats")
    ax.legend(fontsize=7)
