"""Partner retrieval: ranks on a hand-worked example, ties counted against the query, collapsed and
random embeddings at chance, perfect ones at 1."""

import numpy as np
import pytest

from astroembed.evaluate.retrieval import partner_ranks, retrieval_report

# Query i's true partner is target i. Cosines by hand (1/sqrt(2) = 0.707):
#   q0 (1,0): t0 1 (its partner), t1 1 (a tie), t2 0.707     -> rank 1
#   q1 (0,1): t0 0, t1 0 (its partner, tied with t0), t2 0.707 -> rank 2
#   q2 (1,1): t0 0.707, t1 0.707, t2 1 (its partner)          -> rank 0
QUERIES = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
TARGETS = np.array([[2.0, 0.0], [1.0, 0.0], [3.0, 3.0]])  # lengths differ: only directions count


def test_ranks_of_a_hand_worked_example_count_ties_against_the_query():
    assert partner_ranks(QUERIES, TARGETS).tolist() == [1, 2, 0]
    report = retrieval_report(QUERIES, TARGETS)
    assert report["top1"] == pytest.approx(1 / 3) and report["top1pct"] == pytest.approx(1 / 3)
    assert report["median_rank"] == 1.0 and report["n"] == 3
    assert report["top1_chance"] == pytest.approx(1 / 3) and report["top1pct_chance"] == pytest.approx(1 / 3)


def test_collapsed_embeddings_score_no_better_than_chance():
    n = 500
    collapsed = np.ones((n, 16), np.float32)
    report = retrieval_report(collapsed, collapsed)
    # Every candidate ties with the partner: it ranks last, never first.
    assert report["top1"] == 0.0 and report["top1pct"] == 0.0 and report["median_rank"] == n - 1
    assert report["top1"] <= report["top1_chance"] and report["top1pct"] <= report["top1pct_chance"]
    # Collapsed up to noise that carries no pairing: recall at chance level, median rank in the middle.
    rng = np.random.default_rng(0)
    n = 4000
    nearly = retrieval_report(1 + 1e-3 * rng.normal(size=(n, 16)), 1 + 1e-3 * rng.normal(size=(n, 16)))
    assert nearly["top1pct_chance"] == pytest.approx(40 / n)
    # binomial standard deviation of top1pct at chance: sqrt(0.01 * 0.99 / 4000) = 0.0016
    assert abs(nearly["top1pct"] - 0.01) < 0.005 and nearly["top1"] < 5 / n
    assert 0.45 * n < nearly["median_rank"] < 0.55 * n


def test_perfect_pairs_score_one_and_random_pairs_chance():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 16))
    perfect = retrieval_report(x, x + 1e-3 * rng.normal(size=x.shape))
    assert perfect["top1"] == 1.0 and perfect["top1pct"] == 1.0 and perfect["median_rank"] == 0
    random = retrieval_report(x, rng.normal(size=(300, 16)))
    assert random["top1_chance"] == pytest.approx(1 / 300) and random["top1pct_chance"] == pytest.approx(3 / 300)
    assert random["top1"] < 0.05 and 100 < random["median_rank"] < 200


def test_undefined_similarities_and_unpaired_rows_are_errors():
    x = np.ones((4, 3))
    zero = x.copy()
    zero[2] = 0.0
    with pytest.raises(ValueError, match="target row 2 .* zero or not finite"):
        partner_ranks(x, zero)
    nan = x.copy()
    nan[1, 0] = np.nan
    with pytest.raises(ValueError, match="query row 1"):
        partner_ranks(nan, x)
    with pytest.raises(ValueError, match="pair up"):
        retrieval_report(x, x[:3])
