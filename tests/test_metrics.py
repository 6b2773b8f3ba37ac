import math

import numpy as np
import pytest

from amuro.scoring.metrics import RESAMPLES, accuracy, bootstrap, normalize, rouge_l
from analysis import intervals


def test_accuracy_matches_normalized_labels():
    assert normalize("  Entailment.\n") == "entailment"
    assert accuracy(["Entailment.", "yes", "no!"], ["entailment", "no", "no"]) == [1.0, 0.0, 1.0]


def test_rouge_l_f_measure_with_stemming():
    # "cats" stems to "cat": LCS = the cat sat (3 tokens); P = 3/3, R = 3/6, F = 2PR/(P+R) = 2/3
    assert rouge_l(["the cats sat"], ["the cat sat on the mat"]) == [pytest.approx(2 / 3)]
    assert rouge_l(["", "a b"], ["a b", "a b"]) == [0.0, 1.0]


def test_bootstrap_against_hand_computed_distribution():
    # Items [1, 1, 1, 0]: a resample's mean is (ones among 4 draws with p = 3/4) / 4, so
    # P(mean <= 0) = 1/256 < 2.5% < P(mean <= 0.25) = 13/256 and P(mean = 1) = 81/256 > 2.5%:
    # the 95% percentile interval is [0.25, 1.0]; the standard error is sqrt(p(1-p)/n) = sqrt(3/64).
    estimate = bootstrap([1, 1, 1, 0], resamples=20000, seed=0)
    assert estimate.score == 0.75 and estimate.n == 4
    assert (estimate.ci_low, estimate.ci_high) == (0.25, 1.0)
    assert estimate.se == pytest.approx(math.sqrt(3 / 64), rel=0.03)
    assert estimate.metrics() == {
        "score": 0.75,
        "score_ci_low": 0.25,
        "score_ci_high": 1.0,
        "score_ci_mid": 0.625,
        "score_se": estimate.se,
        "n": 4,
    }


def test_bootstrap_is_seeded_and_degenerate_sets_have_no_spread():
    scores = [0.1, 0.9, 0.4, 0.7, 0.3, 0.55]
    assert bootstrap(scores, resamples=500, seed=1) == bootstrap(scores, resamples=500, seed=1)
    assert bootstrap(scores, resamples=500, seed=1) != bootstrap(scores, resamples=500, seed=2)
    flat = bootstrap([1.0] * 7, resamples=300)
    assert (flat.score, flat.ci_low, flat.ci_high, flat.se) == (1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        bootstrap([])


@pytest.mark.parametrize(
    "scores",
    [
        [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0],  # accuracy: resampled as counts per value
        list(np.linspace(0.0, 0.8, 150) ** 2),  # ROUGE-like, many values: resampled as item indices
    ],
    ids=["few-values", "many-values"],
)
def test_eval_and_analysis_bootstraps_are_one_algorithm(scores):
    """An eval run's interval and the analysis's interval over the same item scores and seed are the same
    numbers, and both default to the same number of resamples."""
    assert RESAMPLES == intervals.RESAMPLES
    estimate = bootstrap(scores, seed=4)
    assert (estimate.ci_low, estimate.ci_high) == pytest.approx(
        intervals.paired_bootstrap(np.array(scores), seed=4), abs=1e-12
    )
