"""An entry point opened with its settings: the experiment, the ``--dataset-spec`` files, and, each read once
when first asked for, the selected eval datasets and lm-eval tasks, their cells and the series.

``pretrain-eval``, ``crosseval``, ``finetune`` and the sweep open themselves with ``open_entry``; what an
entry point never asks for (a sweep's cells, crosseval's series) is never read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from amuro.commands.series_source import open_or_build_series
from amuro.core import tracking
from amuro.core.fields import Settings
from amuro.core.values import dataset_selection
from amuro.data import DatasetSpec, resolve
from amuro.data.specfile import load_spec_option
from amuro.models.series import Series
from amuro.scoring.lmeval_tasks import LmEvalTask, load_lmeval_tasks

if TYPE_CHECKING:  # scoring imports transformers, which a sweep (it scores nothing itself) never needs
    from amuro.scoring.cells import Cell


@dataclass
class Entry:
    """An open entry point: its invocation (experiment, launcher, group run) and what its settings select."""

    invocation: tracking.Invocation
    cfg: Settings
    datasets: str | None = None  # the eval datasets option as given

    @property
    def experiment_id(self) -> str:
        return self.invocation.experiment_id

    def group(self, key: str, run_name: str, tags: Mapping[str, str] | None = None):
        """The parent run of this invocation's runs (``tracking.Invocation.group``)."""
        return self.invocation.group(key, run_name, tags)

    @cached_property
    def selection(self) -> str | None:
        """The catalogue datasets to score (``amuro.core.values.dataset_selection``); None: none."""
        return dataset_selection(self.datasets, self.cfg.lm_eval_tasks, self.cfg.lm_eval_include)

    @cached_property
    def lmeval_tasks(self) -> list[LmEvalTask]:
        """The lm-eval tasks named, loaded with their data (unknown tasks and unreadable data fail here)."""
        return load_lmeval_tasks(self.cfg.lm_eval_tasks, self.cfg.lm_eval_include)

    def check_eval_sets(self) -> None:
        """Fail now on unknown eval datasets or lm-eval tasks and on lm-eval data that cannot be read (for an
        entry point that scores them later, in other processes)."""
        if self.selection:
            resolve(self.selection, offline_only=self.selection == "all")
        self.lmeval_tasks  # noqa: B018  (loading them is the check)

    def cells(self, specs: Sequence[DatasetSpec], *, check: bool = False) -> list[Cell]:
        """The (dataset, format) cells of these catalogue datasets and the lm-eval tasks in the selected formats;
        ``check``: fail now, before any scoring, on datasets that cannot be prompted with the eval settings."""
        from amuro.scoring.cells import check_cells, select_cells

        cells = select_cells([*specs, *self.lmeval_tasks], self.cfg.formats, self.cfg.eval.protocol)
        if check:
            check_cells(cells, self.cfg.eval)
        return cells

    @cached_property
    def series(self) -> Series:
        """``--model``'s series, the default one built first when missing."""
        return open_or_build_series(self.cfg.model, self.experiment_id, self.cfg.trust_remote_code)


@contextmanager
def open_entry(
    name: str, cfg: Settings, *, datasets: str | None = None, tracking_uri: str | None = None
) -> Iterator[Entry]:
    """``tracking.entry_point``'s ritual for entry point ``name``, then its ``--dataset-spec`` files registered
    (and ``--dataset-revision``'s pins applied); ``datasets``: its eval datasets option."""
    with tracking.entry_point(name, cfg.experiment, tracking_uri) as invocation:
        load_spec_option(cfg.dataset_spec, cfg.dataset_revision)
        yield Entry(invocation, cfg, datasets)
