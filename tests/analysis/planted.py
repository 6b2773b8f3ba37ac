"""Eval runs planted in a tracking store, whose analyses are known by hand.

The plant (model ``tiny-lm``, shots 0 unless said otherwise)::

    eval set (task)   step  base default  base instruct  base io   sft on alpha          sft on beta
    alpha (nli)        100      0.40         0.30         0.20     0.80 d, 0.70 i        -
    alpha              200      0.45          -            -       0.90 d                -
    alpha              300       -            -            -       0.95 d (no base)      -
    beta (nli)         100      0.50          -            -       0.55 d                0.60 d
    beta               200      0.70          -            -       0.60 d                0.75 d
    gamma (summary)    100      0.20          -            -       0.15 d                -
    gamma              200      0.30          -            -       0.30 d                -
    delta (qgen)       100      0.00          -            -       0.10 d                -

Relations of the alpha-tuned runs: alpha in-domain, beta out-of-domain, gamma and delta
cross-task; beta-tuned runs on beta are in-domain. Base intervals (score_ci_low/high):
alpha 100 [0.35, 0.45], 200 [0.40, 0.50] (not learned in pre-training); beta 100
[0.45, 0.55], 200 [0.65, 0.75] and gamma 100 [0.15, 0.25], 200 [0.26, 0.34] (learned).
Every other run: score ± 0.05, score_se 0.02 (tuned 0.03).

Prediction tables: alpha 100 default, base (5 items, each 0.4) and alpha-tuned (each 0.8);
alpha 200 default, base 20 items with items 0-8 correct and alpha-tuned items 0-17 correct
(logged in reverse order, to check items are matched by id); beta 100 alpha-tuned has a
table, its base has none. Noise the loader must see through: an older finished duplicate of
base alpha 100 default (score 0.99), a FAILED and a RUNNING run of that cell, a finetune run,
and an eval run (base alpha, step 400) in the experiment ``elsewhere``. The experiment
``no-evals`` holds only a finetune run.
"""

from __future__ import annotations

from dataclasses import dataclass

from amuro.core.local_server import free_port  # noqa: F401  (the plant's tests reach it from here)

EXPERIMENT = "planted"
OTHER_EXPERIMENT = "elsewhere"
EMPTY_EXPERIMENT = "no-evals"
MODEL = "tiny-lm"
TASKS = {"alpha": "nli", "beta": "nli", "gamma": "summary", "delta": "qgen"}
START = 1_700_000_000_000
BASE_INTERVALS = {
    ("alpha", 100): (0.35, 0.45),
    ("alpha", 200): (0.40, 0.50),
    ("beta", 100): (0.45, 0.55),
    ("beta", 200): (0.65, 0.75),
    ("gamma", 100): (0.15, 0.25),
    ("gamma", 200): (0.26, 0.34),
}


@dataclass
class Store:
    uri: str
    kind: str  # "sqlite" or "server"
    runs: dict[str, str]  # label -> run id


def _relation(train: str, dataset: str) -> str:
    if train == "none":
        return "base"
    if train == dataset:
        return "in-domain"
    return "out-of-domain" if TASKS[train] == TASKS[dataset] else "cross-task"


def plant(uri: str) -> dict[str, str]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(uri)
    experiment_id = client.create_experiment(EXPERIMENT)
    other_id = client.create_experiment(OTHER_EXPERIMENT)
    empty_id = client.create_experiment(EMPTY_EXPERIMENT)
    runs: dict[str, str] = {}
    clock = iter(range(START, START + 10**9, 1000))

    def log(
        label,
        dataset,
        step,
        score,
        *,
        train="none",
        fmt="default",
        shots=0,
        items=None,
        status="FINISHED",
        kind="eval",
        experiment=experiment_id,
        tokens="",
    ):
        tuning = "none" if train == "none" else "sft"
        se = 0.02 if train == "none" else 0.03
        low, high = score - 0.05, score + 0.05
        if (train, fmt) == ("none", "default"):
            low, high = BASE_INTERVALS.get((dataset, step), (low, high))
        tags = {
            "amuro.kind": kind,
            "amuro.model": MODEL,
            "amuro.revision": f"step{step}",
            "amuro.step": str(step),
            "amuro.tokens": tokens,
            "amuro.tuning": tuning,
            "amuro.train_dataset": train,
            "amuro.eval_dataset": dataset,
            "amuro.task": TASKS[dataset],
            "amuro.relation": _relation(train, dataset),
            "amuro.format": fmt,
            "amuro.shots": str(shots),
            "amuro.metric": "rougeL" if TASKS[dataset] in ("summary", "qgen") else "accuracy",
            "amuro.seed": "0",
            "amuro.source_run_id": "",
            "amuro.run_key": f"key-{label}",
        }
        start = next(clock)
        run = client.create_run(experiment, start_time=start, tags=tags, run_name=label)
        metrics = {
            "score": score,
            "score_ci_low": low,
            "score_ci_high": high,
            "score_se": se,
            "n": float(len(items["item_id"]) if items else 100),
        }
        client.log_batch(run.info.run_id, metrics=[Metric(key, value, start, 0) for key, value in metrics.items()])
        if items is not None:
            client.log_table(run.info.run_id, items, "predictions.json")
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status, end_time=start + 500)
        runs[label] = run.info.run_id

    def table(scores, reverse=False):
        ids = [f"item-{i}" for i in range(len(scores))]
        rows = list(zip(ids, scores))[::-1] if reverse else list(zip(ids, scores))
        return {
            "item_id": [item for item, _ in rows],
            "prediction": ["p"] * len(rows),
            "reference": ["r"] * len(rows),
            "item_score": [score for _, score in rows],
        }

    # Noise first: older than the runs that count.
    log("old-duplicate", "alpha", 100, 0.99)
    log("finetune", "alpha", 100, 0.5, train="alpha", kind="finetune")
    log("other-experiment", "alpha", 400, 0.11, experiment=other_id)
    log("no-evals", "alpha", 100, 0.5, kind="finetune", experiment=empty_id)

    log("base-alpha-100", "alpha", 100, 0.40, items=table([0.4] * 5), tokens="419430400")
    log("base-alpha-100-instruct", "alpha", 100, 0.30, fmt="instruct")
    log("base-alpha-100-io", "alpha", 100, 0.20, fmt="io")
    log("base-alpha-200", "alpha", 200, 0.45, items=table([1.0] * 9 + [0.0] * 11))
    log("base-beta-100", "beta", 100, 0.50)
    log("base-beta-200", "beta", 200, 0.70)
    log("base-gamma-100", "gamma", 100, 0.20)
    log("base-gamma-200", "gamma", 200, 0.30)
    log("base-delta-100", "delta", 100, 0.00)

    log("alpha-alpha-100", "alpha", 100, 0.80, train="alpha", items=table([0.8] * 5))
    log("alpha-alpha-100-instruct", "alpha", 100, 0.70, train="alpha", fmt="instruct")
    log("alpha-alpha-200", "alpha", 200, 0.90, train="alpha", items=table([1.0] * 18 + [0.0] * 2, reverse=True))
    log("alpha-alpha-300", "alpha", 300, 0.95, train="alpha")
    log("alpha-beta-100", "beta", 100, 0.55, train="alpha", items=table([1.0, 0.0]))
    log("alpha-beta-200", "beta", 200, 0.60, train="alpha")
    log("alpha-gamma-100", "gamma", 100, 0.15, train="alpha")
    log("alpha-gamma-200", "gamma", 200, 0.30, train="alpha")
    log("alpha-delta-100", "delta", 100, 0.10, train="alpha")
    log("beta-beta-100", "beta", 100, 0.60, train="beta")
    log("beta-beta-200", "beta", 200, 0.75, train="beta")

    # Newer than the counted run of their cell, but not finished.
    log("failed", "alpha", 100, 0.01, status="FAILED")
    log("running", "alpha", 100, 0.02, status="RUNNING")
    return runs
