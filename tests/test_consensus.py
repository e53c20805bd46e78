import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from scgan_cluster._consensus import (
    agreement,
    agreement_weights,
    align_labels,
    coassociation_embedding,
    consensus,
    linkage_assign,
    linkage_consensus,
    vote,
)


def test_align_labels_recovers_a_permutation():
    ref = np.array([0, 0, 1, 1, 2, 2, 2])
    perm = np.array([2, 0, 1])  # run label = perm[ref label]
    labels = perm[ref]
    mapping = align_labels(ref, labels, 3)
    np.testing.assert_array_equal(mapping[labels], ref)


def test_consensus_majority_vote_known_answer():
    truth = np.repeat([0, 1, 2], 4)
    run_a = truth.copy()
    run_b = np.array([1, 2, 0])[truth]  # same partition, other ids
    run_c = run_b.copy()
    run_c[[0, 5]] = [0, 1]  # two cells moved to another cluster
    runs = np.stack([run_a, run_b, run_c], axis=1)
    labels, confidence, maps, scores = consensus(runs, 3)
    # the partition of the two agreeing runs wins everywhere
    assert len(np.unique(labels)) == 3
    for k in range(3):
        assert len(np.unique(labels[truth == k])) == 1
    # the two moved cells have 2 of 3 votes, all others 3 of 3
    expected = np.ones(12)
    expected[[0, 5]] = 2 / 3
    np.testing.assert_allclose(confidence, expected)
    # the moved-cell run agrees least with the others
    assert scores.argmin() == 2
    # maps send every run onto the consensus ids
    for r in range(3):
        agree = maps[r][runs[:, r]] == labels
        assert agree.mean() >= 10 / 12
    votes = vote(runs, maps, 3)
    np.testing.assert_array_equal(votes.sum(axis=1), np.full(12, 3))


def test_agreement_is_mean_ari_with_the_others():
    a = np.array([0, 0, 1, 1])
    runs = np.stack([a, a, np.array([0, 1, 0, 1])], axis=1)
    scores = agreement(runs)
    # runs 0 and 1 are identical (ARI 1) and independent of run 2 (ARI -0.5 on 4 cells)
    np.testing.assert_allclose(scores, [0.25, 0.25, -0.5])


@pytest.mark.parametrize(
    ("runs", "msg"),
    [(np.zeros((5, 1), dtype=int), "R >= 2"), (np.full((5, 2), 3), r"\[0, 3\)")],
)
def test_consensus_input_errors(runs, msg):
    with pytest.raises(ValueError, match=msg):
        consensus(runs, 3)


def test_weighted_consensus_follows_the_heavier_runs():
    truth = np.repeat([0, 1, 2], 4)
    heavy = truth.copy()
    light = truth.copy()
    light[[0, 1, 4]] = [1, 1, 0]  # the two light runs move three cells the same way
    runs = np.stack([heavy, light, light.copy()], axis=1)
    counted, *_ = consensus(runs, 3)
    np.testing.assert_array_equal(counted, light)  # 2 votes against 1
    labels, confidence, maps, _ = consensus(runs, 3, weights=np.array([3.0, 1.0, 1.0]))
    np.testing.assert_array_equal(labels, heavy)  # 3 against 2
    expected = np.ones(12)
    expected[[0, 1, 4]] = 3 / 5
    np.testing.assert_allclose(confidence, expected)
    votes = vote(runs, maps, 3, np.array([3.0, 1.0, 1.0]))
    assert votes.dtype == np.float64
    np.testing.assert_allclose(votes.sum(axis=1), np.full(12, 5.0))


def test_equal_weights_give_the_counted_consensus():
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(4), 25)
    runs = np.stack(
        [np.where(rng.random(100) < 0.2, rng.integers(0, 4, 100), truth) for _ in range(4)], 1
    )
    runs[:, 1] = np.array([2, 0, 3, 1])[runs[:, 1]]  # other ids
    counted = consensus(runs, 4)
    weighted = consensus(runs, 4, weights=np.full(4, 0.7))
    for a, b in zip(counted, weighted, strict=True):
        np.testing.assert_allclose(a, b)


@pytest.mark.parametrize(
    ("weights", "msg"),
    [
        (np.ones(2), "one value per run"),
        (np.array([1.0, -1.0, 1.0]), "non-negative"),
        (np.zeros(3), "not all zero"),
        (np.array([1.0, np.nan, 1.0]), "finite"),
    ],
)
def test_consensus_weight_errors(weights, msg):
    runs = np.stack([np.arange(6) % 2] * 3, axis=1)
    with pytest.raises(ValueError, match=msg):
        consensus(runs, 2, weights=weights)


def test_agreement_weights_are_the_runs_own_scores():
    rng = np.random.default_rng(1)
    truth = np.repeat(np.arange(3), 20)
    runs = np.stack(
        [np.where(rng.random(60) < 0.3, rng.integers(0, 3, 60), truth) for _ in range(4)], 1
    )
    runs[:, 3] = rng.integers(0, 3, 60)  # a run of noise
    labels, confidence, _, scores = consensus(runs, 3, weights="agreement")
    want = consensus(runs, 3, weights=np.clip(agreement(runs), 0, None))
    np.testing.assert_array_equal(labels, want[0])
    np.testing.assert_allclose(confidence, want[1])
    np.testing.assert_array_equal(agreement_weights(np.array([-0.1, 0.0])), [1.0, 1.0])
    np.testing.assert_array_equal(agreement_weights(np.array([-0.1, 0.4])), [0.0, 0.4])
    with pytest.raises(ValueError, match="'agreement' or None"):
        consensus(runs, 3, weights="median")


# ------------------------------------------------------------------ co-association linkage
AMBIGUOUS = np.array([[0, 1, 0], [0, 1, 0], [0, 1, 1], [1, 0, 1], [1, 0, 1], [1, 0, 1]])


def test_coassociation_embedding_dot_is_the_weighted_share_of_runs():
    runs = AMBIGUOUS
    x = coassociation_embedding(runs, 2)
    co = (runs[:, None, :] == runs[None, :, :]).mean(axis=2)
    np.testing.assert_allclose(x @ x.T, co)
    w = np.array([1.0, 1.0, 5.0])
    xw = coassociation_embedding(runs, 2, w)
    np.testing.assert_allclose(xw @ xw.T, ((runs[:, None, :] == runs[None, :, :]) * w).sum(2) / 7)


def test_linkage_consensus_known_answer():
    # cell 2 is with cells 0-1 in 2 of 3 runs, with cells 3-5 in the third
    labels, confidence, profiles, scores = linkage_consensus(AMBIGUOUS, 2)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]  # equal sizes: the cluster of cell 0 first
    np.testing.assert_allclose(confidence, [8 / 9, 8 / 9, 7 / 9, 1, 1, 1])
    assert profiles.shape == (2, 6)
    np.testing.assert_allclose(scores, agreement(AMBIGUOUS))
    # the third run weighing 5 of 7 takes cell 2 over: the bigger cluster becomes 0
    labels, confidence, _, _ = linkage_consensus(AMBIGUOUS, 2, weights=np.array([1, 1, 5]))
    assert labels.tolist() == [1, 1, 0, 0, 0, 0]
    np.testing.assert_allclose(confidence[2], (5 / 7 + 5 / 7 + 5 / 7 + 1) / 4)


def test_linkage_consensus_recovers_permuted_runs_and_gives_exactly_k():
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(3), 20)
    runs = np.stack([rng.permutation(3)[truth] for _ in range(4)], axis=1)
    labels, confidence, _, _ = linkage_consensus(runs, 3)
    assert adjusted_rand_score(truth, labels) == 1.0
    np.testing.assert_allclose(confidence, 1.0)
    # the runs hold only 3 groups, yet K = 4 clusters are returned (cutting at a height gives 3)
    runs4 = np.where(runs == 2, 3, runs)  # ids 0, 1, 3 of K = 4
    assert len(np.unique(linkage_consensus(runs4, 4)[0])) == 4
    # above max_cells a subset builds the tree and the other cells join their cluster
    labels, _, _, _ = linkage_consensus(runs, 3, max_cells=30, random_state=1)
    assert adjusted_rand_score(truth, labels) == 1.0


def test_linkage_subset_path_on_disagreeing_runs():
    """Above max_cells, on runs that disagree: the subset's tree still finds the planted groups."""
    rng = np.random.default_rng(3)
    truth = np.repeat(np.arange(4), 150)
    runs = []
    for _ in range(6):
        labels = rng.permutation(4)[truth]
        noisy = rng.random(len(truth)) < 0.15  # each run mislabels 15% of the cells
        labels[noisy] = rng.integers(0, 4, noisy.sum())
        runs.append(labels)
    runs = np.stack(runs, axis=1)
    full, _, _, _ = linkage_consensus(runs, 4, weights="agreement")
    labels, confidence, profiles, _ = linkage_consensus(
        runs, 4, weights="agreement", max_cells=120, random_state=0
    )
    assert adjusted_rand_score(truth, full) > 0.97
    assert adjusted_rand_score(truth, labels) > 0.97
    # every cell, in the tree or not, is where its co-association with the profiles puts it,
    # up to the tree's own cells whose cut disagrees with the profiles
    w = agreement_weights(agreement(runs))
    assigned = linkage_assign(runs, profiles, 4, w)
    assert (assigned == labels).mean() > 0.99
    np.testing.assert_allclose(
        confidence, (coassociation_embedding(runs, 4, w) @ profiles.T)[np.arange(600), labels]
    )


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"max_cells": 1}, "max_cells must be at least 2"),
        ({"weights": "equal"}, "weights must be an array"),
        ({"weights": np.array([1.0, -1.0, 1.0])}, "non-negative"),
    ],
)
def test_linkage_consensus_errors(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        linkage_consensus(AMBIGUOUS, 2, **kwargs)
    with pytest.raises(ValueError, match="labels must lie in"):
        linkage_consensus(AMBIGUOUS + 1, 2)
