"""gains, forgetting and transfer on the planted runs, checked against hand computation."""

import numpy as np
import pandas as pd
import pytest
from planted import MODEL

from analysis import PredictionTables, forgetting, gains, transfer
from analysis.compare import FORGETTING_COLUMNS, GAIN_COLUMNS, NO_BASE, NO_TUNED
from analysis.intervals import RESAMPLES, paired_bootstrap

SE_HALF_WIDTH = 1.96 * np.sqrt(0.02**2 + 0.03**2)  # base se 0.02, tuned se 0.03
# (train set, eval set, step, format): (base, tuned, relation)
EXPECTED_GAINS = {
    ("alpha", "alpha", 100, "default"): (0.40, 0.80, "in-domain"),
    ("alpha", "alpha", 100, "instruct"): (0.30, 0.70, "in-domain"),
    ("alpha", "beta", 100, "default"): (0.50, 0.55, "out-of-domain"),
    ("alpha", "delta", 100, "default"): (0.00, 0.10, "cross-task"),
    ("alpha", "gamma", 100, "default"): (0.20, 0.15, "cross-task"),
    ("beta", "beta", 100, "default"): (0.50, 0.60, "in-domain"),
    ("alpha", "alpha", 200, "default"): (0.45, 0.90, "in-domain"),
    ("alpha", "beta", 200, "default"): (0.70, 0.60, "out-of-domain"),
    ("alpha", "gamma", 200, "default"): (0.30, 0.30, "cross-task"),
    ("beta", "beta", 200, "default"): (0.70, 0.75, "in-domain"),
}


def _by_key(table):
    return {(row.train_dataset, row.eval_dataset, row.step, row.format): row for row in table.itertuples(index=False)}


def hand_bootstrap_alpha_200():
    """Items 0-8 right before and after tuning, 9-17 right only after, 18-19 never: 11 items
    differ by 0 and 9 by 1, so a resample of the 20 items is how many of each it draws."""
    rng = np.random.default_rng(0)
    draws = rng.multinomial(20, [11 / 20, 9 / 20], size=RESAMPLES)
    means = draws @ np.array([0.0, 1.0]) / 20
    return tuple(np.percentile(means, [2.5, 97.5]))


def test_gains_exact(runs, store, tmp_path):
    result = gains(runs, PredictionTables(store.uri, tmp_path))
    table = result.table
    assert list(table.columns) == GAIN_COLUMNS
    rows = _by_key(table)
    assert set(rows) == set(EXPECTED_GAINS)
    for key, (base, tuned, relation) in EXPECTED_GAINS.items():
        row = rows[key]
        assert (row.model, row.shots, row.relation) == (MODEL, 0, relation)
        assert row.base == pytest.approx(base) and row.tuned == pytest.approx(tuned)
        assert row.gain == pytest.approx(tuned - base, abs=1e-12)
        if base == 0:
            assert np.isnan(row.rel_gain)
        else:
            assert row.rel_gain == pytest.approx((tuned - base) / base)
    assert rows[("alpha", "alpha", 100, "instruct")].rel_gain == pytest.approx(4 / 3)
    assert rows[("alpha", "beta", 200, "default")].rel_gain == pytest.approx(-1 / 7)


def test_gain_intervals(runs, store, tmp_path):
    rows = _by_key(gains(runs, PredictionTables(store.uri, tmp_path)).table)
    # Every item gains exactly 0.4, so every resample does too.
    degenerate = rows[("alpha", "alpha", 100, "default")]
    assert degenerate.ci_method == "paired-bootstrap"
    assert (degenerate.ci_low, degenerate.ci_high) == pytest.approx((0.4, 0.4), abs=1e-12)
    # Items matched by id although the tuned table lists them in reverse.
    paired = rows[("alpha", "alpha", 200, "default")]
    assert paired.ci_method == "paired-bootstrap"
    assert (paired.ci_low, paired.ci_high) == pytest.approx(hand_bootstrap_alpha_200(), abs=1e-12)
    assert paired.ci_low < 0.45 < paired.ci_high
    # Only the tuned run has a table: intervals from the standard errors.
    for key in [("alpha", "beta", 100, "default"), ("alpha", "gamma", 200, "default")]:
        row = rows[key]
        assert row.ci_method == "normal-se"
        assert row.ci_low == pytest.approx(row.gain - SE_HALF_WIDTH)
        assert row.ci_high == pytest.approx(row.gain + SE_HALF_WIDTH)


def test_without_prediction_tables_every_interval_is_normal_se(runs):
    table = gains(runs).table
    assert set(table["ci_method"]) == {"normal-se"}
    np.testing.assert_allclose(table["ci_high"] - table["gain"], SE_HALF_WIDTH)


def test_paired_bootstrap_matches_the_formula():
    differences = np.array([0.0] * 9 + [1.0] * 9 + [0.0] * 2)
    assert paired_bootstrap(differences) == pytest.approx(hand_bootstrap_alpha_200(), abs=0)
    assert paired_bootstrap(np.full(7, 0.25)) == pytest.approx((0.25, 0.25))
    # Many distinct differences (e.g. ROUGE): item indices are resampled directly.
    continuous = np.linspace(-0.5, 0.7, 100)
    index = np.random.default_rng(3).integers(0, 100, size=(500, 100))
    by_hand = np.percentile(continuous[index].mean(axis=1), [2.5, 97.5])
    assert paired_bootstrap(continuous, resamples=500, seed=3) == pytest.approx(by_hand, abs=1e-15)
    # Same distribution either way: the two routes agree closely on a large sample.
    coarse = np.repeat([-1.0, 0.0, 1.0], [30, 50, 40])
    jittered = coarse + np.linspace(0, 1e-9, 120)  # 120 distinct values
    by_counts, by_indices = paired_bootstrap(coarse, 20000), paired_bootstrap(jittered, 20000)
    assert by_counts == pytest.approx(by_indices, abs=0.01)


def test_missing_partners_are_listed(runs, store):
    missing = gains(runs).missing
    expected = [store.runs["alpha-alpha-300"], store.runs["base-alpha-100-io"]]
    assert list(missing["run_id"]) == expected
    assert list(missing["reason"]) == [NO_BASE, NO_TUNED]
    assert list(missing["step"]) == [300, 100]


def test_no_partner_at_all_is_not_a_crash(runs):
    tuned_only = runs[runs["tuning"] != "none"]
    result = gains(tuned_only)
    assert result.table.empty and list(result.table.columns) == GAIN_COLUMNS
    assert len(result.missing) == len(tuned_only)
    assert transfer(tuned_only).empty
    base_only = runs[runs["tuning"] == "none"]
    assert gains(base_only).table.empty and len(gains(base_only).missing) == len(base_only)


def test_forgetting_exact(runs, store, tmp_path):
    result = forgetting(runs, PredictionTables(store.uri, tmp_path))
    table = result.table
    assert list(table.columns) == FORGETTING_COLUMNS
    assert set(table["relation"]) == {"out-of-domain", "cross-task"}
    rows = _by_key(table)
    expected = {key: value for key, value in EXPECTED_GAINS.items() if value[2] != "in-domain"}
    assert set(rows) == set(expected)
    for key, (base, tuned, _) in expected.items():
        row = rows[key]
        assert row.forgetting == pytest.approx(base - tuned, abs=1e-12)
        assert row.ci_method == "normal-se"
        assert row.ci_low == pytest.approx(row.forgetting - SE_HALF_WIDTH)
        assert row.ci_high == pytest.approx(row.forgetting + SE_HALF_WIDTH)
    assert rows[("alpha", "beta", 200, "default")].forgetting == pytest.approx(0.10)
    assert rows[("alpha", "gamma", 100, "default")].rel_gain == pytest.approx(-0.25)
    assert np.isnan(rows[("alpha", "delta", 100, "default")].rel_gain)
    assert result.missing.empty


def test_transfer_exact(runs):
    table = transfer(runs)
    expected = pd.DataFrame(
        {
            "train_task": ["nli", "nli", "nli"],
            "eval_task": ["nli", "qgen", "summary"],
            # nli: alpha .40 .40 .45, beta .05 -.10 (tuned on alpha), beta .10 .05 (tuned on beta)
            "mean_gain": [1.35 / 7, 0.10, -0.025],
            "n": [7, 1, 2],
        }
    )
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)


def test_transfer_names_an_unknown_training_task_after_its_dataset(runs):
    mixture = runs.copy()
    tuned_on_alpha = mixture["train_dataset"] == "alpha"
    mixture.loc[tuned_on_alpha, ["tuning", "train_dataset"]] = ["it", "tulu"]
    mixture.loc[tuned_on_alpha, "relation"] = "cross-task"
    table = transfer(mixture).set_index(["train_task", "eval_task"])
    expected = {("tulu", "nli"), ("tulu", "qgen"), ("tulu", "summary"), ("nli", "nli")}
    assert set(table.index) == expected
    assert table.loc[("nli", "nli"), "n"] == 2


def test_training_task_is_inferred_once_per_training_set(runs):
    renamed = runs.replace({"train_dataset": {"alpha": "alpha-train"}})
    table = transfer(renamed)
    # alpha-train is no eval set, but it is in-domain / out-of-domain for nli sets.
    assert set(table["train_task"]) == {"nli"}
    pd.testing.assert_frame_equal(table, transfer(runs))
