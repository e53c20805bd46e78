import numpy as np
import pytest

from scgan_cluster._consensus import agreement, agreement_weights, align_labels, consensus, vote


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
