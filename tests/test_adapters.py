import numpy as np
import pytest
import torch
from _helpers import make_counts
from scipy import sparse

import scgan_cluster as scg
from scgan_cluster.adapters import (
    DenseSource,
    SparseSource,
    as_source,
    prepare_fit,
    prepare_predict,
)


def test_dense_and_sparse_sources_give_the_same_rows():
    x = np.arange(20, dtype=np.float64).reshape(5, 4)
    idx = torch.tensor([4, 0, 2])
    d = as_source(x, torch.device("cpu"))
    s = as_source(sparse.csr_matrix(x), torch.device("cpu"))
    assert isinstance(d, DenseSource)
    assert isinstance(s, SparseSource)
    for src in (d, s):
        out = src.take(idx)
        assert out.dtype == torch.float32
        np.testing.assert_array_equal(out.numpy(), x[[4, 0, 2]])
    assert isinstance(d, scg.train.BatchSource)
    assert isinstance(s, scg.train.BatchSource)


def test_a_sparse_matrix_is_held_dense_on_an_accelerator_where_it_fits(monkeypatch):
    from scgan_cluster.adapters import _sources

    x = sparse.random(6, 4, density=0.5, format="csr", random_state=0)
    meta = torch.device("meta")  # any device other than the CPU, without one
    on_device = as_source(x, meta)
    assert isinstance(on_device, DenseSource)
    assert on_device.gathers_on_device
    assert on_device.data.device == meta
    assert on_device.data.shape == (6, 4)
    assert isinstance(as_source(x, torch.device("cpu")), SparseSource)  # the host keeps CSR
    monkeypatch.setattr(_sources, "DENSE_ON_ACCELERATOR_BYTES", 6 * 4 * 4 - 1)
    assert isinstance(as_source(x, meta), SparseSource)  # too large to densify


@pytest.mark.parametrize("kind", ["numpy", "sparse", "torch", "anndata"])
def test_prepare_fit_on_each_input_kind(kind):
    a = make_counts()
    data = {
        "numpy": a.X,
        "sparse": sparse.csr_matrix(a.X),
        "torch": torch.from_numpy(a.X),
        "anndata": a,
    }[kind]
    p = prepare_fit(data, n_top_genes=10)
    dense = p.x.toarray() if sparse.issparse(p.x) else p.x
    assert dense.shape == (a.n_obs, 10)
    assert dense.max() == pytest.approx(1.0)
    assert p.transform["scale"] > 0
    if kind == "anndata":
        assert all(n.startswith("g") for n in p.var_names)
    else:
        assert p.transform["n_input_features"] == a.n_vars
    q = prepare_fit(data, preprocess=False)
    assert q.transform is None
    assert q.x.shape == a.shape


def test_prepared_anndata_is_used_as_is():
    a = make_counts()
    scg.pp.preprocess(a, 10)
    p = prepare_fit(a)
    np.testing.assert_array_equal(p.x, a.X)
    assert p.transform["scale"] == a.uns["clustergan_preprocess"]["scale"]
    b = make_counts()
    scg.pp.preprocess(b, 10, subset=False)
    p = prepare_fit(b)
    assert p.x.shape == (b.n_obs, 10)
    np.testing.assert_array_equal(p.var_names, b.var_names[b.var["clustergan_selected"]])


def test_prepare_predict_aligns_and_uses_training_scale():
    train = make_counts(seed=0)
    p = prepare_fit(train, n_top_genes=10)
    new = make_counts(seed=5)
    new = new[:, new.var_names[::-1]].copy()  # other gene order
    q = prepare_predict(new, p.var_names, p.transform)
    expected = np.log2(1 + new[:, list(p.var_names)].X) / p.transform["scale"]
    np.testing.assert_allclose(q.x, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="missing from adata.var_names"):
        prepare_predict(new[:, :5], p.var_names, p.transform)


def test_bad_array_inputs():
    with pytest.raises(TypeError, match="Expected an AnnData, numpy array"):
        prepare_fit("not data")
    with pytest.raises(ValueError, match="2-D"):
        prepare_fit(np.zeros(5))
    with pytest.raises(ValueError, match="empty"):
        prepare_fit(np.zeros((0, 5)))
    with pytest.raises(ValueError, match="layer= only applies"):
        prepare_fit(np.zeros((3, 3)), layer="x")


# ---------------------------------------------------------------- images
def _image_anndata(x):
    from anndata import AnnData

    a = AnnData((x.reshape(len(x), -1) / 255).astype(np.float32))
    a.uns["image_shape"] = list(x.shape[1:])
    return a


@pytest.mark.parametrize(
    "kind", ["numpy_uint8", "numpy_float", "torch", "anndata", "sparse_anndata"]
)
def test_images_of_each_kind_are_flattened_pixels_in_unit_range(kind):
    from _helpers import make_images

    x, _ = make_images(shape=(2, 8, 4))
    data = {
        "numpy_uint8": x,
        "numpy_float": x / 255.0,
        "torch": torch.from_numpy(x),
        "anndata": _image_anndata(x),
        "sparse_anndata": _image_anndata(x),
    }[kind]
    if kind == "sparse_anndata":
        data.X = sparse.csr_matrix(data.X)
    p = prepare_fit(data)  # preprocess=True does not touch images
    assert p.image_shape == (2, 8, 4)
    assert p.transform is None
    dense = p.x.toarray() if sparse.issparse(p.x) else p.x
    assert dense.dtype == np.float32
    np.testing.assert_allclose(dense, x.reshape(len(x), -1) / 255.0, rtol=1e-6)
    # a source hands the networks (b, C, H, W) batches
    src = as_source(p.x, torch.device("cpu"), p.image_shape)
    batch = src.take(torch.tensor([3, 0]))
    assert batch.shape == (2, 2, 8, 4)
    np.testing.assert_allclose(batch.numpy(), x[[3, 0]] / 255.0, rtol=1e-6)


def test_image_input_errors():
    from anndata import AnnData

    with pytest.raises(ValueError, match=r"scale the pixels to \[0, 1\]"):
        prepare_fit(np.full((3, 1, 4, 4), 2.0))
    with pytest.raises(ValueError, match="outside"):
        prepare_fit(np.full((3, 1, 4, 4), 300, dtype=np.int32))
    with pytest.raises(ValueError, match="add the channel axis"):
        prepare_fit(np.zeros((3, 4, 4)))
    a = AnnData(np.zeros((3, 16), dtype=np.float32))
    a.uns["image_shape"] = [1, 4, 5]
    with pytest.raises(ValueError, match="holds 20 pixels"):
        prepare_fit(a)
    a.uns["image_shape"] = [1, 4]
    with pytest.raises(ValueError, match="three positive ints"):
        prepare_fit(a)
    with pytest.raises(ValueError, match="takes images of shape"):
        prepare_fit(np.zeros((3, 15)), image_shape=(1, 4, 4))
    # 2-D data read as flattened images when the architecture asks for it
    p = prepare_fit(np.zeros((3, 16)), image_shape=(1, 4, 4))
    assert p.image_shape == (1, 4, 4)


def test_prepare_predict_for_images():
    x = np.random.default_rng(0).random((4, 1, 4, 4)).astype(np.float32)
    names = np.arange(16).astype(str)
    for data in (x, x.reshape(4, 16), _image_anndata((x * 255).astype(np.uint8))):
        q = prepare_predict(data, names, None, image_shape=(1, 4, 4))
        assert q.x.shape == (4, 16)
        assert q.image_shape == (1, 4, 4)
    with pytest.raises(ValueError, match="trained on images of shape"):
        prepare_predict(np.zeros((4, 1, 2, 8)), names, None, image_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="trained on images of shape"):
        prepare_predict(np.zeros((4, 15)), names, None, image_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="got an image batch"):
        prepare_predict(x, names, None)
