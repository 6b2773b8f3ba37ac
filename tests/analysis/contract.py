"""Eval runs of the tracking contract (docs/tracking-contract.md), logged one at a time into a
test's own store, for tests that need a plant of their own."""

from __future__ import annotations

from dataclasses import dataclass

Z_95 = 1.96
START = 1_700_000_000_000


@dataclass(frozen=True)
class Cell:
    """What an eval run scored: checkpoint, tuning and eval set."""

    step: int
    train_dataset: str  # "none" for a base checkpoint
    eval_dataset: str
    format: str = "default"
    shots: int = 0
    train_seed: int | None = None


def relation(train: str, dataset: str, tasks: dict[str, str]) -> str:
    if train == "none":
        return "base"
    if train == dataset:
        return "in-domain"
    return "out-of-domain" if tasks[train] == tasks[dataset] else "cross-task"


def eval_tags(cell: Cell, model: str, tasks: dict[str, str], protocol: str = "amuro") -> dict:
    tuned = cell.train_dataset != "none"
    tags = {
        "amuro.kind": "eval",
        "amuro.model": model,
        "amuro.revision": f"step{cell.step}",
        "amuro.step": str(cell.step),
        "amuro.tuning": "sft" if tuned else "none",
        "amuro.train_dataset": cell.train_dataset,
        "amuro.eval_dataset": cell.eval_dataset,
        "amuro.task": tasks[cell.eval_dataset],
        "amuro.relation": relation(cell.train_dataset, cell.eval_dataset, tasks),
        "amuro.format": cell.format,
        "amuro.shots": str(cell.shots),
        "amuro.metric": "accuracy",
        "amuro.seed": "0",
        "amuro.protocol": protocol,
        "amuro.run_key": f"{model}/{cell}",
    }
    if cell.train_seed is not None:
        tags["amuro.train_seed"] = str(cell.train_seed)
    return tags


def item_table(scores: list[float]) -> dict[str, list]:
    """A ``predictions.json`` table: item ``item-i`` scored ``scores[i]``."""
    return {
        "item_id": [f"item-{i}" for i in range(len(scores))],
        "prediction": ["p"] * len(scores),
        "reference": ["r"] * len(scores),
        "item_score": list(scores),
    }


class Plant:
    """Logs finished eval runs into one experiment of a store, a second apart."""

    def __init__(self, uri: str, experiment: str, model: str, tasks: dict[str, str], protocol: str = "amuro"):
        from mlflow import MlflowClient

        self.client = MlflowClient(uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self.model, self.tasks, self.protocol = model, tasks, protocol
        self._clock = iter(range(START, START + 10**9, 1000))

    def log(self, cell: Cell, score: float, se: float, items: list[float] | None = None) -> str:
        """A finished eval run of ``cell``: score, score_se, interval score ± 1.96·se, n, and
        the prediction table when ``items`` are given. Returns its run id."""
        from mlflow.entities import Metric

        start = next(self._clock)
        run = self.client.create_run(
            self.experiment_id,
            start_time=start,
            tags=eval_tags(cell, self.model, self.tasks, self.protocol),
        )
        run_id = run.info.run_id
        metrics = {
            "score": score,
            "score_se": se,
            "score_ci_low": score - Z_95 * se,
            "score_ci_high": score + Z_95 * se,
            "n": float(len(items) if items else 100),
        }
        self.client.log_batch(run_id, metrics=[Metric(key, value, start, 0) for key, value in metrics.items()])
        if items is not None:
            self.client.log_table(run_id, item_table(items), "predictions.json")
        self.client.set_terminated(run_id, "FINISHED", end_time=start + 500)
        return run_id
