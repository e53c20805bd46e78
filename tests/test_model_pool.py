"""Pooling replicas (known answers on hand-made labels) and the consensus embedding."""

import numpy as np
import pytest

from scgan_cluster.model import ConsensusEmbedding, Pool, replica_weights

# three replicas of six cells: all keep {0, 1, 2} and {3, 4, 5} apart, but the third puts
# cell 2 with cells 3-5
RUNS = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]])
EQUAL = np.ones(3)


def test_linkage_pool_known_shares():
    pool = Pool.fit(RUNS, 2, EQUAL, method="linkage")
    np.testing.assert_array_equal(pool.predict(RUNS), [0, 0, 0, 1, 1, 1])
    share = pool.shares(RUNS)
    # cell 0 is with cells 0 and 1 in every replica and with cell 2 in two of three
    np.testing.assert_allclose(share[0], [(1 + 1 + 2 / 3) / 3, 0.0])
    # cell 2: with cluster 0's cells in 2/3, 2/3, 1 of the replicas; with cluster 1's in 1/3
    np.testing.assert_allclose(share[2], [7 / 9, 1 / 3])
    np.testing.assert_allclose(pool.proba(RUNS)[2], [0.7, 0.3])
    np.testing.assert_allclose(pool.proba(RUNS).sum(1), 1.0)
    # a new cell that two replicas put with cluster 1's cells and one with cluster 0's
    np.testing.assert_array_equal(pool.predict(np.array([[1, 1, 0]])), [1])


def test_linkage_pool_weights_decide():
    # with the third replica alone counting, cell 2 belongs with cells 3-5
    weights = np.array([0.0, 0.0, 1.0])
    pool = Pool.fit(RUNS, 2, weights, method="linkage")
    labels = pool.predict(RUNS)
    assert labels[2] == labels[3] != labels[0]


def test_vote_pool_known_shares():
    # the second replica names the clusters the other way round
    runs = RUNS.copy()
    runs[:, 1] = 1 - runs[:, 1]
    pool = Pool.fit(runs, 2, EQUAL, method="vote")
    np.testing.assert_array_equal(pool.maps[1], [1, 0])
    np.testing.assert_array_equal(pool.predict(runs), [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(pool.proba(runs)[2], [2 / 3, 1 / 3])
    with pytest.raises(ValueError, match="method must be one of"):
        Pool.fit(runs, 2, EQUAL, method="median")


def test_a_cell_no_cluster_shares_gets_an_even_proba():
    pool = Pool.fit(RUNS, 2, EQUAL, method="linkage")
    # label 1 in the first replica never occurs with cluster 0 nor 1's cells in the others
    profiles = pool.profiles.copy()
    profiles[:] = 0.0
    empty = Pool("linkage", 2, EQUAL, profiles=profiles)
    np.testing.assert_allclose(empty.proba(RUNS[:1]), [[0.5, 0.5]])


def test_replica_weights_are_the_agreements_clipped_at_zero():
    rng = np.random.default_rng(0)
    good = np.repeat([0, 1, 2], 20)
    runs = np.stack([good, good, rng.integers(0, 3, 60)], axis=1)
    scores, weights = replica_weights(runs)
    assert scores[0] == pytest.approx((1.0 + scores[2]) / 2)
    assert weights[2] == max(scores[2], 0.0)
    np.testing.assert_allclose(weights[:2], scores[:2])


def test_consensus_embedding_keeps_the_replicas_geometry():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(50, 4))
    # the second replica sees the same geometry, scaled and shifted: standardised, they agree
    latents = [base, 3.0 * base + 7.0]
    emb = ConsensusEmbedding.fit(latents, np.ones(2), n_components=4)
    out = emb.transform(latents)
    assert out.shape == (50, 4)
    assert out.dtype == np.float32
    standard = (base - base.mean(0)) / np.sqrt(base.var(0).sum())

    def sqdist(x):
        return ((x[:, None, :] - x[None]) ** 2).sum(-1)

    np.testing.assert_allclose(sqdist(out), sqdist(standard), atol=1e-5)
    # new cells go through the same map
    np.testing.assert_allclose(emb.transform([base[:5], 3.0 * base[:5] + 7.0]), out[:5], atol=1e-6)


def test_consensus_embedding_weights_and_dimensions():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(40, 5))
    # a replica of weight 0 does not move the embedding
    alone = ConsensusEmbedding.fit([a], np.ones(1), 3).transform([a])
    both = ConsensusEmbedding.fit([a, b], np.array([1.0, 0.0]), 3).transform([a, b])
    np.testing.assert_allclose(np.abs(both), np.abs(alone), atol=1e-5)
    # at most the joined width
    assert ConsensusEmbedding.fit([a, b], np.ones(2), 30).transform([a, b]).shape == (40, 8)
    with pytest.raises(ValueError, match="Expected 2 latents"):
        ConsensusEmbedding.fit([a, b], np.ones(2), 3).transform([a])


def test_pooling_in_blocks_of_cells_equals_one_block(monkeypatch):
    """Atlas scale: pooling and the consensus embedding pass over the cells in blocks; any
    block size gives what one block gives (the old whole-matrix computation)."""
    import scgan_cluster._consensus as consensus_module

    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 500)
    runs = np.stack(
        [np.where(rng.random(500) < 0.9, truth, rng.integers(0, 3, 500)) for _ in range(4)], 1
    )
    latents = [(rng.normal(size=(500, 4)), rng.random((500, 3))) for _ in range(4)]
    scores, weights = replica_weights(runs)

    def pooled():
        pool = Pool.fit(runs, 3, weights, max_cells=100, random_state=0)
        emb = ConsensusEmbedding.fit(latents, weights, 5)
        return pool.profiles, pool.proba(runs), emb.components, emb.transform(latents)

    whole = pooled()
    monkeypatch.setattr(consensus_module, "ROWS", 37)
    assert consensus_module.row_blocks(500)[1] == slice(37, 74)
    blocks = pooled()
    for a, b in zip(whole, blocks, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-6)
    # a replica's latent as parts (zn, softmax zc) is the parts joined column-wise
    joined = [np.hstack(parts) for parts in latents]
    np.testing.assert_allclose(
        ConsensusEmbedding.fit(joined, weights, 5).transform(joined), blocks[3], atol=1e-6
    )
