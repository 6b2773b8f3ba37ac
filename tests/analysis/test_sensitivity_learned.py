"""Prompt sensitivity, the learned-in-pre-training split and gains per group."""

import math

import numpy as np
import pandas as pd
import pytest
from planted import MODEL

from analysis import gains, gains_by_group, learned, sensitivity
from analysis.learned import LEARNED_COLUMNS
from analysis.sensitivity import SENSITIVITY_COLUMNS


def test_sensitivity_exact(runs):
    table = sensitivity(runs)
    assert list(table.columns) == SENSITIVITY_COLUMNS
    # 17 (checkpoint, tuning, train set, eval set, shots) groups in the plant.
    assert len(table) == 17
    rows = table.set_index(["step", "tuning", "train_dataset", "eval_dataset"])
    base = rows.loc[(100, "none", "none", "alpha")]  # default .40, instruct .30, io .20
    assert base["n_formats"] == 3
    assert base["spread"] == pytest.approx(0.20)
    assert base["std"] == pytest.approx(np.sqrt((0.1**2 + 0 + 0.1**2) / 3))
    assert base["default_gap"] == pytest.approx(0.40 - 0.25)
    tuned = rows.loc[(100, "sft", "alpha", "alpha")]  # default .80, instruct .70
    assert tuned["n_formats"] == 2
    assert (tuned["spread"], tuned["std"], tuned["default_gap"]) == pytest.approx((0.1, 0.05, 0.1))
    single = rows.drop([(100, "none", "none", "alpha"), (100, "sft", "alpha", "alpha")])
    assert (single["n_formats"] == 1).all() and (single["spread"] == 0).all()
    # One seed everywhere: no across-seed spread.
    assert (table["n_seeds"] == 1).all() and table["seed_std"].isna().all()
    assert single["default_gap"].isna().all()
    assert set(table["model"]) == {MODEL} and set(table["shots"]) == {0}


DECADES = math.log10(200) - math.log10(100)
HALF_WIDTH = 1.96 * math.sqrt(2 * 0.02**2)


def test_learned_exact(runs):
    table = learned(runs)
    expected = pd.DataFrame(
        {
            "model": [MODEL] * 4,
            "eval_dataset": ["alpha", "beta", "delta", "gamma"],
            "protocol": ["amuro"] * 4,
            "task": ["nli", "nli", "qgen", "summary"],
            "first_step": [100, 100, 100, 100],
            "last_step": [200, 200, 100, 200],
            "first_score": [0.40, 0.50, 0.00, 0.20],
            "last_score": [0.45, 0.70, 0.00, 0.30],
            "n_checkpoints": [2, 2, 1, 2],
            # Two checkpoints: the rise per log10(step) and its interval from both errors (0.02).
            "slope": [0.05 / DECADES, 0.20 / DECADES, np.nan, 0.10 / DECADES],
            "slope_ci_low": [(rise - HALF_WIDTH) / DECADES for rise in (0.05, 0.20)]
            + [np.nan]
            + [(0.10 - HALF_WIDTH) / DECADES],
            "slope_ci_high": [(rise + HALF_WIDTH) / DECADES for rise in (0.05, 0.20)]
            + [np.nan]
            + [(0.10 + HALF_WIDTH) / DECADES],
            # alpha rises 0.05 < 0.055, within the noise; beta 0.20 and gamma 0.10 beyond it
            "learned_in": ["fine-tuning", "pre-training", "fine-tuning", "pre-training"],
        }
    )
    assert list(table.columns) == LEARNED_COLUMNS
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)


def test_learned_in_another_format_or_without_runs(runs):
    instruct = learned(runs, prompt_format="instruct")
    assert list(instruct["eval_dataset"]) == ["alpha"]
    assert instruct.iloc[0]["learned_in"] == "fine-tuning"
    assert learned(runs, prompt_format="no-such-format").empty


def test_gains_by_group(runs):
    gain_table = gains(runs).table
    split = learned(runs)
    in_domain = gains_by_group(gain_table, split)
    expected = pd.DataFrame(
        {
            "model": [MODEL] * 4,
            "protocol": ["amuro"] * 4,
            "step": [100, 100, 200, 200],
            "group": ["fine-tuning", "pre-training"] * 2,
            # alpha (fine-tuning): .40 default, .40 instruct | .45 ; beta (pre-training): .10 | .05
            "mean_gain": [0.40, 0.10, 0.45, 0.05],
            "n": [2, 1, 1, 1],
        }
    )
    pd.testing.assert_frame_equal(in_domain, expected, check_dtype=False)

    every_relation = gains_by_group(gain_table, split, relations=None).set_index(["step", "group"])
    # step 100, pre-training: beta +.05 (alpha-tuned), +.10 (beta-tuned), gamma -.05
    assert every_relation.loc[(100, "pre-training"), "mean_gain"] == pytest.approx(0.10 / 3)
    # step 100, fine-tuning: alpha .40, .40 and delta .10
    assert every_relation.loc[(100, "fine-tuning"), "mean_gain"] == pytest.approx(0.30)
    assert every_relation.loc[(200, "pre-training"), "n"] == 3


def test_unclassified_datasets_keep_their_gains(runs):
    gain_table = gains(runs).table
    split = learned(runs)
    table = gains_by_group(gain_table, split[split["eval_dataset"] != "beta"])
    assert set(table["group"]) == {"fine-tuning", "unclassified"}
    assert table["n"].sum() == 5
