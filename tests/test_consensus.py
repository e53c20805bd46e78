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
    stable_clusters,
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


def test_linkage_consensus_min_size_keeps_outliers_from_taking_a_cluster():
    # three blocks of 20 cells and one cell x that no run keeps with one block for long:
    # B and C are co-assigned in 3 of 6 runs, x with C in 2 and alone in the others but one
    blocks = [(0, 1, 2, 2), (0, 1, 2, 1), (0, 1, 1, 2), (0, 1, 1, 2), (0, 1, 2, 2), (0, 1, 1, 0)]
    runs = np.array([[a] * 20 + [b] * 20 + [c] * 20 + [x] for a, b, c, x in blocks]).T
    a, b, c, x = 0, 20, 40, 60
    # the exact cut at K = 3 spends a cluster on x and merges B with C
    labels, _, _, _ = linkage_consensus(runs, 3)
    assert np.bincount(labels).tolist() == [40, 20, 1]
    assert labels[b] == labels[c]
    assert labels[x] not in labels[:60]
    # clusters of fewer than 10% of the cells do not count: A, B, C, and x joins C, the block it
    # is co-assigned with most (2 of 6 runs)
    labels, confidence, profiles, _ = linkage_consensus(runs, 3, min_size=0.1)
    assert np.bincount(labels).tolist() == [20, 20, 21]
    assert len({labels[a], labels[b], labels[c]}) == 3
    assert labels[x] == labels[c]
    np.testing.assert_allclose(confidence[x], 2 / 6)
    np.testing.assert_allclose(confidence[:60], 1.0)
    assert profiles.shape == (3, 18)
    # a share so small that every cluster counts is the exact cut
    np.testing.assert_array_equal(
        linkage_consensus(runs, 3, min_size=1e-4)[0], linkage_consensus(runs, 3)[0]
    )
    # no cut holds 3 clusters of a third of the cells each (61 cells): the exact cut
    np.testing.assert_array_equal(
        linkage_consensus(runs, 3, min_size=1 / 3)[0], linkage_consensus(runs, 3)[0]
    )


def _oversized_runs(consistent_split: bool, n_runs: int = 6, seed: int = 0) -> np.ndarray:
    """Runs of K = 6 labels over three blocks of 100 cells and one outlying cell: each run
    splits one block in two (a random block and halves, or always the first block's halves)."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(3), 100)
    runs = []
    for r in range(n_runs):
        labels = rng.permutation(6)[:3][truth]  # three of the six labels, in random order
        block = 0 if consistent_split else rng.integers(3)
        cells = np.flatnonzero(truth == block)
        half = cells[:50] if consistent_split else rng.choice(cells, 50, replace=False)
        labels[half] = rng.choice(np.setdiff1d(np.arange(6), labels))  # a fourth label
        runs.append(np.append(labels, r % 6))  # the outlier: a different label each run
    return np.stack(runs, axis=1)


def test_stable_clusters_counts_what_the_runs_agree_on():
    # random splits of single blocks in single runs: three blocks
    assert stable_clusters(_oversized_runs(False), 6) == 3
    # the first block split the same way by every run: real structure, four
    assert stable_clusters(_oversized_runs(True), 6) == 4
    # the outlying cell counts only once clusters of one cell do
    assert stable_clusters(_oversized_runs(False), 6, min_size=0.0) == 4
    # a low cut also separates what only some runs split
    assert stable_clusters(_oversized_runs(False), 6, threshold=0.2) > 3
    for kwargs, msg in (
        ({"threshold": 1.0}, "threshold must lie in"),
        ({"min_size": 1.0}, "min_size must be a share"),
    ):
        with pytest.raises(ValueError, match=msg):
            stable_clusters(_oversized_runs(False), 6, **kwargs)


def test_linkage_consensus_n_groups_cuts_runs_of_more_modes():
    runs = _oversized_runs(False)
    truth = np.append(np.repeat(np.arange(3), 100), 0)
    labels, confidence, profiles, _ = linkage_consensus(runs, 6, n_groups=3, min_size=0.01)
    assert adjusted_rand_score(truth[:300], labels[:300]) == 1.0
    assert profiles.shape == (3, 6 * 6)
    assert confidence[:300].min() > 0.5  # each run keeps a cell with half its block or all
    # the same clusters for the cells from their runs alone, as for new cells
    w = agreement_weights(agreement(runs))
    np.testing.assert_array_equal(linkage_assign(runs, profiles, 6, w)[:300], labels[:300])
    with pytest.raises(ValueError, match="n_groups must lie in"):
        linkage_consensus(runs, 6, n_groups=7)


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"min_size": -0.1}, "min_size must be a share"),
        ({"min_size": 0.6}, "min_size must be a share"),
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
