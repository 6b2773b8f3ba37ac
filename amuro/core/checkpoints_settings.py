"""Settings of ``amuro checkpoints``: what a series holds, listed before a grid is planned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from amuro.core.fields import Settings
from amuro.core.shared_settings import _require_model, checkpoints_setting, experiment_setting, model_setting


@dataclass
class CheckpointsSettings(Settings):
    """List the checkpoints of a series (revision, step, tokens) and what --checkpoints selects of them."""

    entry_point: ClassVar[str] = "checkpoints"

    experiment: str | None = experiment_setting()
    model: str = model_setting()
    checkpoints: str = checkpoints_setting()

    def validate(self) -> None:
        _require_model(self.model)
