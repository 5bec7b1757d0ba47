"""Selection strategies on hand-made arrays: the exact rows each one must pick."""

from __future__ import annotations

import math

import numpy as np
import pytest

from visionloop.loop import strategies as st

PROBS = np.array([
    [0.90, 0.05, 0.05],  # sure
    [0.34, 0.33, 0.33],  # most uncertain by every measure
    [0.50, 0.50, 0.00],  # a tie between two: margin's most uncertain, entropy ln 2
    [0.60, 0.30, 0.10],
    [1.00, 0.00, 0.00],  # certain
])


def test_measures_exact_values():
    np.testing.assert_allclose(st.least_confidence(PROBS), [0.10, 0.66, 0.50, 0.40, 0.0])
    np.testing.assert_allclose(st.margin(PROBS), [0.15, 0.99, 1.0, 0.70, 0.0])
    h = [-(0.9 * math.log(0.9) + 2 * 0.05 * math.log(0.05)),
         -(0.34 * math.log(0.34) + 2 * 0.33 * math.log(0.33)),
         math.log(2), -(0.6 * math.log(0.6) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1)), 0.0]
    np.testing.assert_allclose(st.entropy(PROBS), h)


def test_uncertainty_strategies_pick_the_known_rows():
    assert st.choose("entropy", 2, uncertainty=st.entropy(PROBS)).tolist() == [1, 3]
    assert st.choose("least-confidence", 3, uncertainty=st.least_confidence(PROBS)).tolist() == [1, 2, 3]
    assert st.choose("margin", 2, uncertainty=st.margin(PROBS)).tolist() == [2, 1]


def test_ties_go_to_the_lower_index():
    assert st.top_k(np.array([0.2, 0.7, 0.7, 0.1, 0.7]), 3).tolist() == [1, 2, 4]
    # k-center: two points equally far from the mean, the lower index first
    emb = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    assert st.k_center_greedy(emb, 1).tolist() == [0]


def test_one_sigmoid_column_is_yes_no():
    np.testing.assert_allclose(st.entropy(np.array([[0.5], [1.0]])), [math.log(2), 0.0])


def test_box_uncertainty_and_aggregation():
    boxes = [np.array([0.9, 0.5]), np.array([]), np.array([0.6, 0.6, 0.6]), np.array([0.99])]
    u = [st.box_uncertainty(b, "least-confidence") for b in boxes]
    np.testing.assert_allclose(u[0], [0.1, 0.5])
    np.testing.assert_allclose(st.aggregate(u, "max"), [0.5, 0.0, 0.4, 0.01])
    np.testing.assert_allclose(st.aggregate(u, "mean"), [0.3, 0.0, 0.4, 0.01])
    np.testing.assert_allclose(st.aggregate(u, "sum"), [0.6, 0.0, 1.2, 0.01])
    # so: max picks image 0, sum picks image 2
    assert st.top_k(st.aggregate(u, "max"), 1).tolist() == [0]
    assert st.top_k(st.aggregate(u, "sum"), 1).tolist() == [2]
    # entropy of a box peaks at 0.5
    assert st.box_uncertainty(np.array([0.5]), "entropy")[0] == pytest.approx(math.log(2))


def test_k_center_greedy_picks_the_farthest_points():
    # a tight cluster at the origin and three outliers at known distances
    emb = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [10.0, 0.0], [0.0, 5.0], [-3.0, 0.0]])
    labelled = np.array([[0.0, 0.0]])
    # farthest from the labelled centre: (10,0); then from {0,(10,0)}: (0,5) (d=5); then (-3,0) (d=3)
    assert st.k_center_greedy(emb, 3, centers=labelled).tolist() == [3, 4, 5]
    # without labelled centres: farthest from the mean (1.17, 0.87) first, which is (10, 0)
    assert st.k_center_greedy(emb, 2).tolist()[0] == 3
    # more picks than points: every point once
    assert sorted(st.k_center_greedy(emb, 10).tolist()) == list(range(6))


def test_hybrid_takes_the_most_uncertain_of_each_cluster():
    emb = np.array([[0, 0], [0, 1], [1, 0], [100, 100], [100, 101], [101, 100]], dtype=float)
    u = np.array([0.9, 0.8, 0.7, 0.1, 0.3, 0.2])
    # top-2 by uncertainty alone would be rows 0 and 1, both of one cluster
    assert st.top_k(u, 2).tolist() == [0, 1]
    for seed in range(5):
        assert st.hybrid(emb, u, 2, seed=seed).tolist() == [0, 4]


def test_kmeans_is_seeded():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 4))
    assert np.array_equal(st.kmeans(x, 5, seed=1), st.kmeans(x, 5, seed=1))
    assert set(st.kmeans(x, 5, seed=1).tolist()) == set(range(5))


def test_like_picks_the_nearest_by_cosine():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [-1.0, 0.0], [0.7, 0.7]])
    q = np.array([[2.0, 0.0]])  # length does not matter
    assert st.like(emb, q, 3).tolist() == [0, 2, 4]
    # two queries: each row's nearest counts
    assert st.like(emb, np.array([[1.0, 0.0], [0.0, 1.0]]), 2).tolist() == [0, 1]


def test_random_is_seeded_and_distinct():
    a = st.choose("random", 5, n=20, seed=7)
    assert a.tolist() == st.choose("random", 5, n=20, seed=7).tolist()
    assert len(set(a.tolist())) == 5 and a.max() < 20
    assert a.tolist() == np.random.default_rng(7).permutation(20)[:5].tolist()


def test_missing_inputs_are_errors():
    with pytest.raises(ValueError):
        st.choose("entropy", 2, embeddings=np.zeros((3, 2)))
    with pytest.raises(ValueError):
        st.choose("k-center", 2, uncertainty=np.zeros(3))


def h2(v: float) -> float:
    """Binary entropy (nats)."""
    return 0.0 if v in (0.0, 1.0) else -(v * math.log(v) + (1 - v) * math.log(1 - v))


def test_vote_entropy_exact_values():
    # K = 3 members, N = 3 rows, C = 3 classes: all agree; three different votes; two against one
    members = np.array([
        [[0.8, 0.1, 0.1], [0.5, 0.3, 0.2], [0.6, 0.3, 0.1]],
        [[0.4, 0.3, 0.3], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1]],
        [[0.9, 0.0, 0.1], [0.2, 0.2, 0.6], [0.3, 0.6, 0.1]],
    ])
    np.testing.assert_allclose(st.vote_entropy(members), [0.0, math.log(3), h2(1 / 3)])
    assert st.committee_probs(members, "vote-entropy").tolist() == st.vote_entropy(members).tolist()


def test_bald_exact_values_and_kl_identity():
    # K = 2: sure of different classes (ln 2); both unsure alike (0: high entropy, no disagreement); in between
    members = np.array([
        [[1.0, 0.0], [0.5, 0.5], [0.8, 0.2]],
        [[0.0, 1.0], [0.5, 0.5], [0.4, 0.6]],
    ])
    want = [math.log(2), 0.0, (h2(0.6) - h2(0.8)) / 2]  # H(0.6) − (H(0.8) + H(0.4)) / 2, H(0.4) = H(0.6)
    np.testing.assert_allclose(st.bald(members), want, atol=1e-12)
    # the same as the members' mean KL to their mean, on the row without zeros
    p, q, m = np.array([0.8, 0.2]), np.array([0.4, 0.6]), np.array([0.6, 0.4])
    kl = (np.sum(p * np.log(p / m)) + np.sum(q * np.log(q / m))) / 2
    assert st.bald(members)[2] == pytest.approx(kl, abs=1e-12)
    assert st.committee_probs(members, "disagreement").tolist() == st.bald(members).tolist()
    assert st.top_k(st.bald(members), 1).tolist() == [0]
    assert st.top_k(st.entropy(members.mean(axis=0)), 1).tolist() == [0]  # entropy of the mean: 0 and 1 tie
    with pytest.raises(ValueError):
        st.bald(members[:1])  # one member is no committee


# three detectors on one image (xyxy, score, class)
DET = [
    ([[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 120, 120]], [0.9, 0.3, 0.6], [0, 1, 0]),
    ([[1, 0, 11, 10], [50, 50, 60, 60]], [0.7, 0.4], [0, 0]),
    ([[0, 0, 10, 10], [0, 5, 10, 15], [100, 100, 120, 118]], [0.5, 0.8, 0.2], [0, 0, 0]),
]
# by score: 0.9 (m0) seeds and takes m1's IoU-0.818 box (0.7) and m2's IoU-1 box (0.5; not its IoU-1/3 0.8 one);
# 0.8 (m2) finds nothing left; 0.6 (m0) takes m2's IoU-0.9 box (0.2); m1's 0.4 box sits on m0's 0.3 box but is
# another class, so both stand alone
CLUSTERS = [[0.9, 0.7, 0.5], [0, 0, 0.8], [0.6, 0, 0.2], [0, 0.4, 0], [0.3, 0, 0]]


def test_box_clusters_match_greedily_by_score_class_and_iou():
    got = st.box_clusters(*zip(*DET, strict=True))
    np.testing.assert_allclose(got, CLUSTERS)
    assert st.box_clusters([[], []], [[], []], [[], []]).shape == (0, 2)
    # IoU just under 0.5 does not match: [0,0,10,10] vs [0,0,10,20] is 0.5 exactly (matches), vs [0,0,10,21] not
    half = st.box_clusters([[[0, 0, 10, 10]], [[0, 0, 10, 20]]], [[0.9], [0.8]], [[0], [0]])
    np.testing.assert_allclose(half, [[0.9, 0.8]])
    under = st.box_clusters([[[0, 0, 10, 10]], [[0, 0, 10, 21]]], [[0.9], [0.8]], [[0], [0]])
    np.testing.assert_allclose(under, [[0.9, 0.0], [0.0, 0.8]])


def test_cluster_measures_exact_values():
    x = np.array(CLUSTERS)
    # (1 − m/K) + population variance of the found scores
    np.testing.assert_allclose(st.cluster_disagreement(x), [0.08 / 3, 2 / 3, 1 / 3 + 0.04, 2 / 3, 2 / 3])
    np.testing.assert_allclose(st.cluster_vote_entropy(x), [0.0, h2(1 / 3), h2(2 / 3), h2(1 / 3), h2(1 / 3)])
    np.testing.assert_allclose(st.cluster_bald(x)[0], h2(0.7) - (h2(0.9) + h2(0.7) + h2(0.5)) / 3)
    np.testing.assert_allclose(st.cluster_bald(x)[1], h2(0.8 / 3) - h2(0.8) / 3)
    # per image: max, mean, sum of the clusters; an image nobody found anything in scores 0
    per_image = [st.committee_boxes(x, "disagreement"), st.committee_boxes(np.zeros((0, 3)), "disagreement")]
    np.testing.assert_allclose(st.aggregate(per_image, "max"), [2 / 3, 0.0])
    np.testing.assert_allclose(st.aggregate(per_image, "sum"), [0.08 / 3 + 2 + 1 / 3 + 0.04, 0.0])
    np.testing.assert_allclose(st.aggregate(per_image, "mean"), [(0.08 / 3 + 2 + 1 / 3 + 0.04) / 5, 0.0])
    assert {s.value for s in st.Strategy if s.committee} == {"disagreement", "vote-entropy", "bald"}
