"""Settings of ``amuro checkpoints``: what a series holds, listed before a grid is planned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from amuro.core.shared_settings import SeriesSettings, checkpoints_setting


@dataclass
class CheckpointsSettings(SeriesSettings):
    """List the checkpoints of a series (revision, step, tokens) and what --checkpoints selects of them."""

    entry_point: ClassVar[str] = "checkpoints"

    checkpoints: str = checkpoints_setting()
