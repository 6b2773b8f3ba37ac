"""The series a sweep runs the study for: each ``--model`` (or ``--model-file``) series opened, its checkpoints
chosen, and what of them enters the sweep's key."""

from __future__ import annotations

from dataclasses import dataclass, field

from amuro.commands.series_source import open_or_build_series
from amuro.core.errors import UserError
from amuro.core.settings import SweepSettings


def short_name(series_name: str) -> str:
    """What cell and run names call a series: ``pythia-160m`` for ``EleutherAI/pythia-160m``."""
    return series_name.rstrip("/").split("/")[-1]


@dataclass
class SeriesGrid:
    """One series of the sweep: as given to ``--model``, its name, and the chosen checkpoints."""

    model: str
    series_name: str
    revisions: list[tuple[str, int]]
    locations: list[str] = field(default_factory=list)

    @property
    def short(self) -> str:
        return short_name(self.series_name)


def open_grids(cfg: SweepSettings, models: list[str], experiment_id: str) -> list[SeriesGrid]:
    """Each series of the sweep with its chosen checkpoints; a series named twice (two spellings of one series,
    or two series whose names end alike) is refused, since its cells and runs would not be told apart."""
    grids: list[SeriesGrid] = []
    for model in models:
        series = open_or_build_series(model, experiment_id, cfg.trust_remote_code)
        chosen = series.select(cfg.checkpoints)
        same = next((g for g in grids if g.short == short_name(series.name)), None)
        if same is not None:
            raise UserError(
                f"--model names the series {series.name} twice ({same.model} and {model}): give each series once"
            )
        revisions = [(c.revision, c.step) for c in chosen]
        grids.append(SeriesGrid(model, series.name, revisions, [c.location for c in chosen]))
    return grids


def key_revisions(grids: list[SeriesGrid]) -> object:
    """The checkpoints in the sweep's key: one series' list as it always was, several series' by name."""
    if len(grids) == 1:
        return grids[0].revisions
    return {g.series_name: g.revisions for g in grids}
