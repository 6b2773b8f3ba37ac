"""Seed replicates (eval runs that differ only in amuro.train_seed) as one cell, and the
two-level bootstrap (seeds, then items) of their gain."""

import itertools
import json
import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner
from contract import Cell, Plant

from analysis.cli import cli
from analysis.intervals import bootstrap_interval, bootstrap_means, paired_bootstrap

MODEL = "tiny-lm"
TASKS = {"alpha": "nli", "beta": "nli"}
ITEMS = 10
BASE_ITEMS = [1.0] * 4 + [0.0] * 6  # 0.4
SEED_ITEMS = {0: [1.0] * 7 + [0.0] * 3, 1: [1.0] * 9 + [0.0] * 1}  # 0.7 and 0.9


def gains_json(uri: str) -> tuple[list[dict], str]:
    result = CliRunner().invoke(cli, ["gains", "--experiment", "seeds", "--tracking-uri", uri, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_seed_replicates_are_one_cell(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    plant = Plant(uri, "seeds", MODEL, TASKS)
    plant.log(Cell(100, "none", "alpha"), 0.4, 0.02, BASE_ITEMS)
    for seed, items in SEED_ITEMS.items():
        plant.log(Cell(100, "alpha", "alpha", train_seed=seed), np.mean(items), 0.03, items)
    # Two replicates without prediction tables: the interval from the across-seed spread.
    plant.log(Cell(100, "none", "beta"), 0.5, 0.02)
    plant.log(Cell(100, "alpha", "beta", train_seed=0), 0.52, 0.01)
    plant.log(Cell(100, "alpha", "beta", train_seed=1), 0.60, 0.01)
    # One seed behaves as before.
    plant.log(Cell(200, "none", "alpha"), 0.4, 0.02, BASE_ITEMS)
    plant.log(Cell(200, "alpha", "alpha", train_seed=0), 0.7, 0.03, SEED_ITEMS[0])

    rows, stderr = gains_json(uri)
    assert "older finished run" not in stderr  # replicates are no re-runs of one cell
    assert "Missing partners" not in stderr
    cells = {(row["step"], row["eval_dataset"]): row for row in rows}
    assert len(rows) == len(cells) == 3

    replicated = cells[(100, "alpha")]
    replicate_gains = [np.mean(items) - 0.4 for items in SEED_ITEMS.values()]  # 0.3, 0.5
    assert replicated["n_seeds"] == 2
    assert replicated["tuned"] == pytest.approx(0.8)
    assert replicated["seed_std"] == pytest.approx(0.2 / math.sqrt(2))  # ddof=1 of 0.7, 0.9
    assert replicated["gain"] == pytest.approx(np.mean(replicate_gains))
    assert replicated["ci_method"] == "two-level-bootstrap"
    assert replicated["ci_low"] <= np.mean(replicate_gains) <= replicated["ci_high"]
    differences = [np.array(items) - np.array(BASE_ITEMS) for items in SEED_ITEMS.values()]
    assert (replicated["ci_low"], replicated["ci_high"]) == pytest.approx(bootstrap_interval(differences), abs=1e-12)

    spread = cells[(100, "beta")]
    assert (spread["n_seeds"], spread["ci_method"]) == (2, "normal-se")
    assert spread["tuned"] == pytest.approx(0.56) and spread["gain"] == pytest.approx(0.06)
    assert spread["seed_std"] == pytest.approx(0.08 / math.sqrt(2))
    # se of the mean of 2 seeds: sqrt(s² / 2), s² = 0.0032 (above the runs' own se² 0.0001).
    half_width = 1.96 * math.sqrt(0.0032 / 2 + 0.02**2)
    assert (spread["ci_low"], spread["ci_high"]) == pytest.approx((0.06 - half_width, 0.06 + half_width))

    single = cells[(200, "alpha")]
    assert (single["n_seeds"], single["ci_method"]) == (1, "paired-bootstrap")
    assert single["seed_std"] is None and single["gain"] == pytest.approx(0.3)
    assert (single["ci_low"], single["ci_high"]) == pytest.approx(paired_bootstrap(differences[0]), abs=1e-12)


# Two seeds, each paired item by item with the same base: seed A's two items differ by 0 and
# 1, seed B's both by 1. Small enough to enumerate every outcome of both levels.
SEED_A, SEED_B = np.array([0.0, 1.0]), np.array([1.0, 1.0])


def enumerated_distribution(groups) -> dict[Fraction, Fraction]:
    """Exact distribution of the two-level bootstrap mean: draw len(groups) seeds with
    replacement, resample each drawn seed's items with replacement, average the means."""
    distribution = Counter()
    seeds = len(groups)
    for picks in itertools.product(range(seeds), repeat=seeds):
        item_draws = [itertools.product(groups[pick], repeat=len(groups[pick])) for pick in picks]
        for draw in itertools.product(*item_draws):
            mean = sum(Fraction(sum(Fraction(v) for v in items), len(items)) for items in draw) / seeds
            probability = Fraction(1, seeds**seeds)
            for pick in picks:
                probability /= len(groups[pick]) ** len(groups[pick])
            distribution[mean] += probability
    return dict(distribution)


def test_two_level_bootstrap_against_the_enumerated_distribution():
    exact = enumerated_distribution([SEED_A, SEED_B])
    # By hand: seeds (A,A) 1/4, (A,B) or (B,A) 1/2, (B,B) 1/4; A's resampled mean is 0, 1/2
    # or 1 with chances 1/4, 1/2, 1/4, B's always 1.
    assert exact == {
        Fraction(0): Fraction(1, 64),
        Fraction(1, 4): Fraction(4, 64),
        Fraction(1, 2): Fraction(14, 64),
        Fraction(3, 4): Fraction(20, 64),
        Fraction(1): Fraction(25, 64),
    }
    means = bootstrap_means([SEED_A, SEED_B], resamples=40_000, seed=7)
    assert set(np.unique(means)) <= {float(value) for value in exact}
    for value, probability in exact.items():
        # 40,000 draws: a frequency's standard error is at most 0.0025.
        assert np.mean(means == float(value)) == pytest.approx(float(probability), abs=0.01)
    assert means.mean() == pytest.approx(0.75, abs=0.005)  # = the mean of all differences
    # The 2.5% point lies in the mass at 1/4 (P(0) = 1/64 < 2.5%), the 97.5% point at 1.
    assert bootstrap_interval([SEED_A, SEED_B], resamples=40_000, seed=7) == (0.25, 1.0)


def test_two_level_bootstrap_seed_level_with_a_fixed_rng():
    """Items constant within each seed: only the seed level varies, so each resample's mean
    is c0 + (c1 − c0)·(draws of seed 1)/2, the seed draws being the rng's first."""
    groups = [np.full(5, 0.1), np.full(5, 0.5)]
    picks = np.random.default_rng(3).integers(0, 2, size=(1000, 2))
    by_hand = 0.1 + 0.4 * (picks == 1).sum(axis=1) / 2
    np.testing.assert_allclose(bootstrap_means(groups, resamples=1000, seed=3), by_hand, atol=1e-15)
    assert bootstrap_interval(groups, resamples=1000, seed=3) == pytest.approx((0.1, 0.5))
    # One seed is the one-level paired bootstrap.
    assert bootstrap_interval([SEED_A], seed=5) == paired_bootstrap(SEED_A, seed=5)
