import numpy as np
import pytest

import scgan_cluster as scg


def test_synthetic_matches_the_papers_recipe():
    a = scg.datasets.synthetic()
    assert a.shape == (10000, 100)
    assert a.obs["label"].value_counts().to_dict() == {str(k): 2500 for k in range(4)}
    w, u = a.uns["synthetic"]["W"], a.uns["synthetic"]["U"]
    assert w.shape == (10, 2)
    assert u.shape == (100, 10)
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    np.testing.assert_allclose(a.X, sig(sig(a.obsm["Z"] @ w.T) @ u.T), rtol=1e-5)
    assert a.X.dtype == np.float32
    assert a.X.min() > 0
    assert a.X.max() < 1
    b = scg.datasets.synthetic(random_state=0)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, scg.datasets.synthetic(random_state=1).X)
    assert scg.datasets.DATASETS["synthetic"] is scg.datasets.synthetic


def test_synthetic_options_and_errors():
    a = scg.datasets.synthetic(10, 3, n_features=7, n_hidden=4)
    assert a.shape == (30, 7)
    assert a.obs["label"].nunique() == 3
    with pytest.raises(ValueError, match="n_per_cluster"):
        scg.datasets.synthetic(0)
    with pytest.raises(ValueError, match="cluster_std"):
        scg.datasets.synthetic(cluster_std=0)


@pytest.mark.slow
def test_mlp_clustergan_clusters_the_synthetic_data():
    a = scg.datasets.synthetic()
    scg.tl.clustergan(a, 4, preprocess=False, max_iter=5000, random_state=0)
    acc = scg.metrics.hungarian_accuracy(a.obs["label"], a.obs["clustergan"])
    assert acc >= 0.95
