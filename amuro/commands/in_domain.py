"""In-domain scoring after fine-tuning: the tuned model and its base checkpoint on the same cells.

The training set's in-domain evaluation sets are scored in the training (``default``) format with
pretrain-eval's protocol, as eval runs nested under the finetune run: the tuned model's
(``amuro.relation=in-domain``, ``amuro.source_run_id`` = the finetune run) and the base checkpoint's
(``amuro.tuning=none``), which are the very runs pretrain-eval makes and are reused when it already did.
"""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from amuro import data
from amuro.core.settings import FinetuneSettings
from amuro.models.series import Checkpoint
from amuro.models.size import checkpoint_parameters
from amuro.models.targets import checkpoint_target, tuned_target
from amuro.scoring.cells import evaluate_target, scored_split

FORMAT = "default"


def in_domain_specs(train_dataset: str) -> list[data.DatasetSpec]:
    """Scorable catalogue sets whose relation to the training set is ``in-domain``."""
    return [
        spec
        for spec in data.CATALOGUE.values()
        if spec.kind != "chat"
        and scored_split(spec) in spec.splits
        and data.relation(train_dataset, spec.name) == "in-domain"
    ]


def evaluate_in_domain(
    experiment_id: str, run_id: str, ckpt: Checkpoint, spec: data.DatasetSpec, cfg: FinetuneSettings
) -> list[str]:
    """Score tuned and base model on the in-domain cells; prints the comparison, returns the eval run ids."""
    specs = in_domain_specs(spec.name)
    if not specs:
        print(f"{spec.name} has no in-domain evaluation sets in the catalogue: nothing to score")
        return []
    settings = cfg.eval
    cells = [(s, FORMAT) for s in specs]
    target = tuned_target(
        model=ckpt.series,
        revision=ckpt.revision,
        step=ckpt.step,
        tokens=ckpt.tokens,
        tuning=cfg.train.tuning_tag,
        train_dataset=spec.name,
        run_id=run_id,
        seed=settings.seed,
        train_seed=cfg.train.seed,
        model_params=checkpoint_parameters(ckpt),
        trust_remote_code=cfg.trust_remote_code,
    )
    tuned = evaluate_target(experiment_id, run_id, target, cells, settings)
    base = evaluate_target(experiment_id, run_id, checkpoint_target(ckpt, seed=settings.seed), cells, settings)
    client = MlflowClient()
    for (evaluated, _), tuned_cell, base_cell in zip(cells, tuned, base):
        print(
            f"{evaluated.name} [{FORMAT}] {evaluated.metric}: tuned {_interval(client, tuned_cell.run_id)} "
            f"vs base {_interval(client, base_cell.run_id)}"
        )
    return [c.run_id for c in tuned + base]


def _interval(client: MlflowClient, run_id: str) -> str:
    metrics = client.get_run(run_id).data.metrics
    return f"{metrics['score']:.3f} [{metrics['score_ci_low']:.3f}, {metrics['score_ci_high']:.3f}]"
