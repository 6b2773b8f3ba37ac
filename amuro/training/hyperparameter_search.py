"""Hyper-parameter search for fine-tuning: optuna over the learning rate and epochs, one MLflow run per trial.

Each trial is a tracked run done once (``tracking.run_once``) nested under the finetune run
(``amuro.kind=trial``), so a search that was interrupted reuses its finished trials; with the seeded sampler,
the same history yields the same next suggestions. The objective is the completion-only loss on the validation
split (lower is better).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import mlflow
from mlflow.tracking import MlflowClient

from amuro.core import tracking

OBJECTIVE = "val_loss"


@dataclass(frozen=True)
class SearchSpace:
    """Learning rate log-uniform within a factor of ``lr_factor`` of ``lr``; epochs ``epochs`` +- 1 (at least 1)."""

    lr: float
    epochs: int
    lr_factor: float = 10.0

    def suggest(self, trial) -> dict[str, float | int]:
        return {
            "lr": trial.suggest_float("lr", self.lr / self.lr_factor, self.lr * self.lr_factor, log=True),
            "epochs": trial.suggest_int("epochs", max(1, self.epochs - 1), self.epochs + 1),
        }


class TrialRuns:
    """The small MLflow hook: wraps an objective so every optuna trial is a nested, contract-tagged run."""

    def __init__(
        self, experiment_id: str, parent_run_id: str, parent_key: str, tags: Mapping[str, str], run_name: str
    ) -> None:
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.parent_key = parent_key
        self.tags = {**tags, tracking.Tag.KIND: "trial"}
        self.run_name = run_name

    def wrap(self, space: SearchSpace, train_and_score: Callable[[dict], float]) -> Callable:
        def objective(trial) -> float:
            params = space.suggest(trial)
            key = tracking.run_key("trial", {"parent": self.parent_key, "number": trial.number, **params})
            tags = {**self.tags, tracking.Tag.TRIAL: str(trial.number)}
            name = f"{self.run_name} trial {trial.number}"

            def run_trial(run: tracking.TrackedRun) -> None:
                mlflow.log_params({"trial": trial.number, **params})
                mlflow.log_metric(OBJECTIVE, train_and_score(params))

            run = tracking.run_once(self.experiment_id, key, tags, name, run_trial, parent_run_id=self.parent_run_id)
            return MlflowClient().get_run(run.run_id).data.metrics[OBJECTIVE]

        return objective


def run_search(trials: int, space: SearchSpace, objective: Callable, seed: int) -> dict[str, float | int]:
    """Run ``trials`` trials with a seeded TPE sampler; returns the best parameters."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    return dict(study.best_params)
