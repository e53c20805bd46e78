import numpy as np
import pytest
import torch
from _helpers import make_counts
from scipy import sparse
from sklearn.decomposition import PCA

import scgan_cluster as scg
from scgan_cluster.pp import _pca
from scgan_cluster.pp._pca import CLIP, PCAProjection


def _prepared(n_top=30):
    a = make_counts()
    return scg.pp.preprocess(a, n_top, flavor="lognorm", copy=True).X


def test_projection_matches_sklearn_pca_of_the_standardised_cells():
    x = _prepared()
    proj = PCAProjection.fit(x, 5)
    z = (x - x.mean(0)) / x.std(0, ddof=1)
    assert np.abs(z).max() < CLIP  # nothing clipped here
    ref = PCA(5, svd_solver="full").fit(z)
    got = proj.transform(x) * proj.scale
    want = ref.transform(z)
    signs = np.sign((got * want).sum(0))
    assert (signs != 0).all()
    np.testing.assert_allclose(got, want * signs, atol=1e-4)
    # axes signed so that their largest entry is positive
    cols = np.abs(proj.components).argmax(0)
    assert (proj.components[cols, np.arange(5)] > 0).all()
    # the scale: three times the sd of the projections (root of their mean variance)
    p = proj.transform(x).astype(np.float64)
    np.testing.assert_allclose(np.sqrt(p.var(0, ddof=1).mean()), 1 / 3, rtol=1e-5)
    np.testing.assert_allclose(p.mean(0), 0, atol=1e-6)


def test_projection_is_the_same_in_chunks_and_for_sparse_input(monkeypatch):
    x = _prepared()
    whole = PCAProjection.fit(x, 4)
    monkeypatch.setattr(_pca, "CHUNK", 7)
    parts = PCAProjection.fit(sparse.csr_matrix(x), 4)
    np.testing.assert_allclose(parts.components, whole.components, atol=1e-8)
    np.testing.assert_allclose(parts.transform(sparse.csr_matrix(x)), whole.transform(x), atol=1e-5)


def test_standardised_values_are_clipped():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    x[0, 0] = 1e3  # about 50 sd away
    proj = PCAProjection.fit(x, 3)
    z = (x[:1] - proj.mean) / proj.std
    assert z[0, 0] > CLIP
    p = proj.transform(x[:1]).astype(np.float64) * proj.scale
    clipped = np.clip(z, -CLIP, CLIP) - proj.center
    np.testing.assert_allclose(p, clipped @ proj.components, rtol=1e-5)


def test_inverse_transform_recovers_the_features_with_all_components():
    x = _prepared(8)
    proj = PCAProjection.fit(x, 8)
    np.testing.assert_allclose(proj.inverse_transform(proj.transform(x)), x, atol=1e-5)


def test_state_roundtrip():
    x = _prepared()
    proj = PCAProjection.fit(x, 3)
    back = PCAProjection.from_state(proj.state_dict())
    assert all(isinstance(v, torch.Tensor) for v in proj.state_dict().values())
    np.testing.assert_array_equal(back.transform(x), proj.transform(x))
    assert back.n_pcs == 3
    assert back.n_features == x.shape[1]


@pytest.mark.parametrize("n_pcs", [0, -1, True, 2.5])
def test_bad_n_pcs(n_pcs):
    with pytest.raises(ValueError, match="n_pcs must be a positive integer"):
        PCAProjection.fit(np.ones((10, 4)), n_pcs)


def test_too_many_components_and_wrong_width():
    x = np.random.default_rng(0).normal(size=(6, 4))
    with pytest.raises(ValueError, match="pass a smaller n_pcs"):
        PCAProjection.fit(x, 5)
    with pytest.raises(ValueError, match="pass a smaller n_pcs"):
        PCAProjection.fit(x[:3], 3)  # n - 1 = 2
    proj = PCAProjection.fit(x, 2)
    with pytest.raises(ValueError, match="takes 4 features, got 3"):
        proj.transform(x[:, :3])
