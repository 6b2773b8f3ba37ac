"""How much the score depends on the prompt format."""

from __future__ import annotations

import pandas as pd

SENSITIVITY_KEY = ["model", "step", "tuning", "train_dataset", "eval_dataset", "shots"]
SENSITIVITY_COLUMNS = SENSITIVITY_KEY + ["n_formats", "spread", "std", "default_gap"]
TRAINING_FORMAT = "default"


def sensitivity(runs: pd.DataFrame, training_format: str = TRAINING_FORMAT) -> pd.DataFrame:
    """Per (checkpoint, tuning, train set, eval set, shots), across prompt formats:

    - ``spread``: max − min score;
    - ``std``: population standard deviation (ddof=0) of the per-format scores;
    - ``default_gap``: score(training format) − mean score of the other formats
      (NaN when either side is absent).

    Seeds of one format are averaged first, so every format counts once.
    """
    per_format = (
        runs.groupby(SENSITIVITY_KEY + ["format"])["score"].mean().dropna().reset_index()
    )
    scores = per_format.groupby(SENSITIVITY_KEY)["score"]
    table = scores.agg(n_formats="count", high="max", low="min")
    table["spread"] = table.pop("high") - table.pop("low")
    table["std"] = scores.std(ddof=0)
    is_training = per_format["format"] == training_format
    trained = per_format[is_training].set_index(SENSITIVITY_KEY)["score"]
    others = per_format[~is_training].groupby(SENSITIVITY_KEY)["score"].mean()
    table["default_gap"] = trained - others
    return table.reset_index()[SENSITIVITY_COLUMNS]
