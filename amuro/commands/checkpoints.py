"""``amuro checkpoints``: what a series holds (revision, step, tokens) and what ``--checkpoints`` selects of it,
before a grid is planned. Lists only: nothing is loaded, built or logged."""

from __future__ import annotations

from pathlib import Path

from amuro.core import tracking
from amuro.core.checkpoints_settings import CheckpointsSettings
from amuro.models.manifest import is_manifest
from amuro.models.series import Checkpoint, open_series


def checkpoints(cfg: CheckpointsSettings) -> list[Checkpoint]:
    """Print the series' checkpoints, the selected ones marked; returns the selected checkpoints."""
    model = cfg.model.strip()
    named = not (is_manifest(model) or "/" in model or model.startswith(("runs:", ".", "~")) or Path(model).is_dir())
    series = open_series(model, experiment_id=tracking.connect(cfg.experiment) if named else None)
    chosen = series.select(cfg.checkpoints)
    rows = [("", "revision", "step", "tokens", "stage", "location")]
    for ckpt in series.checkpoints:
        stage = f"{ckpt.stage}" + (f" ingredient {ckpt.ingredient}" if ckpt.ingredient else "")
        where = ckpt.location + (f"@{ckpt.hub_revision}" if ckpt.hub_revision else "")
        tokens = _count(ckpt.tokens)
        rows.append(("*" if ckpt in chosen else "", ckpt.revision, str(ckpt.step), tokens, stage, where))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"series {series.name}: {len(series.checkpoints)} checkpoints, {len(chosen)} selected by {cfg.checkpoints!r}")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return chosen


def _count(tokens: int | None) -> str:
    if tokens is None:
        return "-"
    for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if tokens >= size:
            return f"{tokens / size:g}{unit}"
    return str(tokens)
