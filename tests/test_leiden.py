import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from scgan_cluster._leiden import _merge_down, leiden_latent_k


def _blobs(n_blobs: int, n_per: int = 40, spread: float = 10.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=spread, size=(n_blobs, 5))
    truth = np.repeat(np.arange(n_blobs), n_per)
    return centres[truth] + rng.normal(scale=0.3, size=(len(truth), 5)), truth


def test_leiden_latent_k_finds_the_requested_number_of_clusters():
    x, truth = _blobs(4)
    labels = leiden_latent_k(x, 4, random_state=0)
    assert labels.dtype == np.int64
    assert labels.shape == truth.shape
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)
    # fewer clusters than (disconnected) blobs: whole blobs merged, exactly K labels
    two = leiden_latent_k(x, 2, random_state=0)
    assert set(np.unique(two)) == {0, 1}
    assert adjusted_rand_score(truth, two) > 0.3
    # same seed, same labels
    np.testing.assert_array_equal(leiden_latent_k(x, 4, random_state=0), labels)


def test_leiden_latent_k_merges_disconnected_parts_down_to_k():
    # 6 far-apart blobs with 4 neighbours each: 6 components, which leiden never joins
    x, truth = _blobs(6, n_per=5, spread=1000.0)
    labels = leiden_latent_k(x, 3, random_state=0, n_neighbors=4)
    assert set(np.unique(labels)) == {0, 1, 2}
    # whole blobs are merged, never split
    for b in range(6):
        assert len(np.unique(labels[truth == b])) == 1
    sizes = np.bincount(labels)
    assert list(sizes) == sorted(sizes, reverse=True)


def test_merge_down_joins_the_smallest_cluster_to_the_nearest_mean():
    x = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [3.0]])
    labels = np.array([0, 0, 0, 1, 1, 2])
    # cluster 2 (one point at 3.0) is nearest to cluster 0's mean (0.1)
    np.testing.assert_array_equal(_merge_down(x, labels, 2), [0, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(_merge_down(x, labels, 3), [0, 0, 0, 1, 1, 2])


def test_demo_leiden_with_k_writes_k_categories_to_obs():
    import anndata as ad
    import scanpy as sc

    from scgan_cluster._demo import leiden_with_k

    x, truth = _blobs(3)
    a = ad.AnnData(x.astype(np.float32))
    sc.pp.neighbors(a, use_rep="X", random_state=0)
    res = leiden_with_k(a, 3, random_state=0)
    assert 0.01 <= res <= 5.0
    assert list(a.obs["leiden"].cat.categories) == ["0", "1", "2"]
    assert adjusted_rand_score(truth, a.obs["leiden"].to_numpy()) == pytest.approx(1.0)


def test_demo_runs_end_to_end_and_records_the_ensembles(tmp_path, capsys):
    import json

    from scgan_cluster._demo import run_demo

    results = run_demo(tmp_path, max_iter=10)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["clustergan"]["max_iter"] == 10
    assert saved["clustergan"]["replicas"] == {"genes": 3, "pcs": 15}
    agreement = saved["clustergan"]["agreement"]
    assert list(agreement) == ["genes", "pcs"]
    assert all(-1.0 <= a <= 1.0 for a in agreement.values())
    assert results["leiden"]["n_clusters"] == 10
    assert (tmp_path / "umap_clustergan.png").stat().st_size > 0
    assert "ClusterGAN pooled the genes ensemble" in capsys.readouterr().out
