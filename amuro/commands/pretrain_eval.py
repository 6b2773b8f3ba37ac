"""``pretrain-eval``: few-shot scores of every selected checkpoint on every dataset and prompt format.

Each checkpoint is loaded once and scores all its cells before the next one; every cell is one eval run
(``amuro.scoring.cells``) nested under one parent run for the invocation, and finished cells are reused.
"""

from __future__ import annotations

from amuro import data
from amuro.commands.entry import open_entry
from amuro.core import tracking
from amuro.core.errors import UserError
from amuro.core.settings import EvalSettings, PretrainEvalSettings
from amuro.data import DatasetSpec
from amuro.models.targets import checkpoint_target
from amuro.scoring.cells import evaluate_target
from amuro.scoring.curves import log_cell_curves
from amuro.scoring.scorer import progress


def select_datasets(selection: str, settings: EvalSettings) -> list[DatasetSpec]:
    """Named datasets as given; from ``all`` and task families only those that can be scored here and now
    (hub datasets need a local copy when offline; ``train`` demonstrations need a train split)."""
    from amuro.data.sources import availability, hub_offline

    named = {w.strip() for w in selection.split(",") if w.strip() in data.CATALOGUE}
    chosen, skipped = [], []
    for spec in data.resolve(selection):
        usable = availability(spec) in ("yes", "local copy", "cached") or (spec.source == "hub" and not hub_offline())
        has_demos = settings.shots == 0 or settings.demo_source != "train" or "train" in spec.splits
        (chosen if spec.name in named or (usable and has_demos) else skipped).append(spec)
    if skipped:
        print(
            f"skipping {len(skipped)} datasets not available offline or without a train split for "
            f"demonstrations: {', '.join(s.name for s in skipped)} (name one to see why)"
        )
    if not chosen:
        raise UserError(
            f"no dataset of {selection!r} can be scored here: name a dataset, or "
            "put local copies of hub datasets in place (see docs/datasets.md)"
        )
    return chosen


def pretrain_eval(cfg: PretrainEvalSettings) -> str:
    """Score the selected checkpoints (reusing finished cells); returns the invocation's parent run id."""
    with open_entry("pretrain-eval", cfg, datasets=cfg.datasets) as entry:
        experiment_id = entry.experiment_id
        settings = cfg.eval
        cells = entry.cells(select_datasets(entry.selection, settings) if entry.selection else [], check=True)
        series = entry.series
        chosen = series.select(cfg.checkpoints)
        key = cfg.run_key("pretrain-eval", series=series.name, revisions=[c.revision for c in chosen])
        short = series.name.split("/")[-1]
        name = f"pretrain-eval {short} ({len(chosen)} checkpoints x {len(cells)} cells)"
        done = []
        with entry.group(key, name, tags=tracking.contract_tags(model=series.name)) as parent:
            for ckpt in progress(chosen, desc="checkpoints", unit="checkpoint", leave=True):
                target = checkpoint_target(ckpt, seed=settings.seed)
                scored = evaluate_target(experiment_id, parent, target, cells, settings)
                log_cell_curves(experiment_id, parent, [c.run_id for c in scored])
                done += scored
    reused = sum(c.reused for c in done)
    print(f"pretrain-eval {short}: {len(done)} cells ({len(done) - reused} scored, {reused} reused) under run {parent}")
    return parent
