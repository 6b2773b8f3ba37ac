"""How much the score depends on the prompt format."""

from __future__ import annotations

import pandas as pd

SENSITIVITY_KEY = ["model", "step", "tuning", "train_dataset", "eval_dataset", "shots", "protocol"]
SENSITIVITY_COLUMNS = SENSITIVITY_KEY + ["n_formats", "spread", "std", "default_gap", "n_seeds", "seed_std"]
TRAINING_FORMAT = "default"
# Published scores are never mixed with runs of one's own.
_GROUP = SENSITIVITY_KEY + ["origin"]


def sensitivity(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (checkpoint, tuning, train set, eval set, shots, protocol), across prompt formats:

    - ``spread``: max − min score;
    - ``std``: population standard deviation (ddof=0) of the per-format scores;
    - ``default_gap``: score(training format) − mean score of the other formats
      (NaN when either side is absent);
    - ``n_seeds``, ``seed_std``: how many seed replicates there are and the across-seed
      standard deviation (ddof=1) of each replicate's own spread (NaN for one seed).

    Seeds of one format are averaged first, so every format counts once.
    """
    per_format = runs.groupby(_GROUP + ["format"])["score"].mean().dropna().reset_index()
    scores = per_format.groupby(_GROUP)["score"]
    table = scores.agg(n_formats="count", high="max", low="min")
    table["spread"] = table.pop("high") - table.pop("low")
    table["std"] = scores.std(ddof=0)
    is_training = per_format["format"] == TRAINING_FORMAT
    trained = per_format[is_training].set_index(_GROUP)["score"]
    others = per_format[~is_training].groupby(_GROUP)["score"].mean()
    table["default_gap"] = trained - others
    per_seed = (
        runs.groupby(_GROUP + ["train_seed", "format"], dropna=False)["score"]
        .mean()
        .dropna()
        .groupby(_GROUP + ["train_seed"], dropna=False)
        .agg(lambda s: s.max() - s.min())
        .groupby(_GROUP)
    )
    table["n_seeds"] = per_seed.size()
    table["seed_std"] = per_seed.std(ddof=1)
    return table.reset_index()[SENSITIVITY_COLUMNS]
