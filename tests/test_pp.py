import numpy as np
import pytest
from _helpers import assert_unchanged, make_counts, snapshot
from scipy import sparse

import scgan_cluster as scg


def _expected(x, n_top):
    var = x.var(axis=0)
    keep = np.sort(np.argsort(-var, kind="stable")[:n_top])
    y = np.log2(1 + x[:, keep])
    return keep, y / y.max()


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_preprocess_matches_the_formula(fmt):
    a = make_counts()
    x = a.X.copy()
    if fmt != "dense":
        a.X = getattr(sparse, f"{fmt}_matrix")(a.X)
    keep, expected = _expected(x, 20)
    scg.pp.preprocess(a, 20)
    assert a.n_vars == 20
    np.testing.assert_array_equal(a.var_names, [f"g{j}" for j in keep])
    got = a.X.toarray() if sparse.issparse(a.X) else a.X
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got.max() == pytest.approx(1.0)
    assert sparse.issparse(a.X) == (fmt != "dense")
    info = a.uns["clustergan_preprocess"]
    assert info["scale"] == pytest.approx(np.log2(1 + x[:, keep].max()))
    assert list(info["genes"]) == [f"g{j}" for j in keep]
    assert info["flavor"] == "paper"


def test_sparse_is_never_densified(monkeypatch):
    a = make_counts()
    a.X = sparse.csr_matrix(a.X)

    def boom(*args, **kwargs):
        raise AssertionError("densified")

    monkeypatch.setattr(sparse.csr_matrix, "toarray", boom)
    monkeypatch.setattr(sparse.csr_matrix, "todense", boom)
    scg.pp.preprocess(a, 10)
    assert sparse.issparse(a.X)
    assert a.X.nnz > 0


def test_selection_by_count_variance_known_answer():
    # gene 0: constant; gene 1: huge variance; gene 2: small variance
    x = np.array([[5, 0, 1], [5, 100, 2], [5, 0, 1], [5, 100, 2]], dtype=np.float32)
    from anndata import AnnData

    a = AnnData(x)
    a.var_names = ["const", "big", "small"]
    scg.pp.preprocess(a, 2)
    assert list(a.var_names) == ["big", "small"]
    np.testing.assert_allclose(a.X[1], np.log2([101, 3]) / np.log2(101), rtol=1e-6)


def test_subset_false_marks_genes_and_transforms_all():
    a = make_counts()
    x = a.X.copy()
    keep, expected = _expected(x, 15)
    scg.pp.preprocess(a, 15, subset=False)
    assert a.n_vars == x.shape[1]
    assert a.var["clustergan_selected"].sum() == 15
    np.testing.assert_array_equal(np.flatnonzero(a.var["clustergan_selected"]), keep)
    np.testing.assert_allclose(a.X[:, keep], expected, rtol=1e-6)
    scale = a.uns["clustergan_preprocess"]["scale"]
    np.testing.assert_allclose(a.X, np.log2(1 + x) / scale, rtol=1e-6)


def test_layer_and_copy():
    a = make_counts()
    a.layers["counts"] = a.X.copy()
    a.X = np.log1p(a.X)
    before = snapshot(a)
    b = scg.pp.preprocess(a, 10, layer="counts", copy=True)
    assert_unchanged(a, before)
    assert b.n_vars == 10
    assert b.uns["clustergan_preprocess"]["layer"] == "counts"
    assert b.layers["counts"].max() == pytest.approx(1.0)
    assert scg.pp.preprocess(a, 10, layer="counts") is None
    assert a.n_vars == 10


def test_recorded_transform_applies_to_new_data():
    ref = make_counts(seed=1)
    new = make_counts(seed=2)
    scg.pp.preprocess(ref, 12)
    info = ref.uns["clustergan_preprocess"]
    raw_new = new[:, list(info["genes"])].X.copy()
    scg.pp.preprocess(new, genes=info["genes"], scale=info["scale"])
    assert list(new.var_names) == list(info["genes"])
    np.testing.assert_allclose(new.X, np.log2(1 + raw_new) / info["scale"], rtol=1e-6)


def test_missing_genes_is_a_clear_error():
    a = make_counts()
    before = snapshot(a)
    with pytest.raises(ValueError, match="missing from adata.var_names"):
        scg.pp.preprocess(a, genes=["g1", "not_a_gene"])
    assert_unchanged(a, before)


@pytest.mark.parametrize(
    ("mutate", "exc", "msg"),
    [
        (lambda a: a.X.__setitem__((0, 0), -1), ValueError, "negative values"),
        (lambda a: a.X.__setitem__((0, 0), 0.5), ValueError, "non-integer values"),
        (lambda a: a.X.__setitem__((0, 0), np.nan), ValueError, "NaN or infinite"),
        (lambda a: a.X.__setitem__((0, 0), np.inf), ValueError, "NaN or infinite"),
    ],
)
def test_not_counts(mutate, exc, msg):
    a = make_counts()
    a.layers["counts"] = a.X.copy()
    mutate(a)
    before = snapshot(a)
    with pytest.raises(exc, match=msg) as err:
        scg.pp.preprocess(a, 10)
    if "values" in msg and "NaN" not in msg:
        assert "layer=" in str(err.value)
        assert "'counts'" in str(err.value)
    assert_unchanged(a, before)


def test_n_top_genes_too_large_names_the_numbers():
    a = make_counts(n_genes=30)
    with pytest.raises(ValueError, match=r"n_top_genes=720 .* \(30\).*n_top_genes=30"):
        scg.pp.preprocess(a)


def test_unknown_layer_view_and_duplicates():
    a = make_counts()
    with pytest.raises(ValueError, match="Layer 'nope' not found"):
        scg.pp.preprocess(a, 10, layer="nope")
    with pytest.raises(ValueError, match="view"):
        scg.pp.preprocess(a[:50], 10)
    b = scg.pp.preprocess(a[:50], 10, copy=True)
    assert b.shape == (50, 10)
    a.var_names = ["g0"] * a.n_vars
    with pytest.raises(ValueError, match="var_names_make_unique"):
        scg.pp.preprocess(a, 10)
    with pytest.raises(TypeError, match="AnnData"):
        scg.pp.preprocess(np.zeros((3, 3)), 2)


@pytest.mark.parametrize("kind", ["int64", "csr_array_int32", "csr_matrix_float64"])
def test_integer_dtypes_and_sparse_arrays(kind):
    a = make_counts()
    x = a.X.astype(np.float64)
    if kind == "int64":
        a.X = x.astype(np.int64)
    elif kind == "csr_array_int32":
        a.X = sparse.csr_array(x.astype(np.int32))
    else:
        a.X = sparse.csr_matrix(x)
    keep, expected = _expected(x, 12)
    scg.pp.preprocess(a, 12)
    got = a.X.toarray() if sparse.issparse(a.X) else a.X
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_preprocessed_file_roundtrip_is_still_recognised(tmp_path):
    import anndata as ad

    from scgan_cluster.adapters import is_prepared

    a = make_counts()
    scg.pp.preprocess(a, 15, subset=False)
    a.write_h5ad(tmp_path / "p.h5ad")
    b = ad.read_h5ad(tmp_path / "p.h5ad")
    assert is_prepared(b, None)
    np.testing.assert_array_equal(
        b.uns["clustergan_preprocess"]["genes"], a.uns["clustergan_preprocess"]["genes"]
    )
    scg.tl.clustergan(b, 3, flavor="paper", max_iter=10, batch_size=32, n_latent=3)
    assert list(b.uns["clustergan"]["var_names"]) == list(a.var_names[a.var["clustergan_selected"]])
    # the default recipe on data prepared with its flavor: its component ensemble is capped by
    # the 15 prepared genes, not the 60 in var
    c = make_counts()
    scg.pp.preprocess(c, 15, subset=False, flavor="lognorm")
    scg.tl.clustergan(c, 3, max_iter=10, batch_size=32, n_latent=3, n_runs=2)
    assert c.uns["clustergan"]["members"]["pcs"]["n_inputs"] == 15


# ---------------------------------------------------------------- flavor="lognorm"
@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_lognorm_matches_scanpy(fmt):
    import scanpy as sc

    a = make_counts()
    ref = a.copy()
    sc.pp.normalize_total(ref, target_sum=1e4)
    sc.pp.log1p(ref)
    sc.pp.highly_variable_genes(ref, n_top_genes=20, flavor="seurat")
    keep = np.flatnonzero(ref.var["highly_variable"].to_numpy())
    expected = ref.X[:, keep] / ref.X[:, keep].max()
    if fmt == "csr":
        a.X = sparse.csr_matrix(a.X)
    scg.pp.preprocess(a, 20, flavor="lognorm")
    np.testing.assert_array_equal(a.var_names, ref.var_names[keep])
    got = a.X.toarray() if sparse.issparse(a.X) else a.X
    assert got.dtype == np.float32
    assert sparse.issparse(a.X) == (fmt == "csr")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    info = a.uns["clustergan_preprocess"]
    assert info["flavor"] == "lognorm"
    assert info["target_sum"] == 1e4
    assert info["scale"] == pytest.approx(float(ref.X[:, keep].max()), rel=1e-6)


def test_lognorm_removes_sequencing_depth():
    a = make_counts()
    deep = a.copy()
    deep.X = deep.X * 3  # every cell sequenced three times as deep
    scg.pp.preprocess(a, 20, flavor="lognorm")
    scg.pp.preprocess(deep, 20, flavor="lognorm")
    np.testing.assert_allclose(deep.X, a.X, rtol=1e-5)
    p, q = make_counts(), make_counts()
    q.X = q.X * 3
    scg.pp.preprocess(p, 20)
    scg.pp.preprocess(q, 20)
    assert not np.allclose(p.X, q.X, rtol=1e-3)  # the paper's transform keeps depth


def test_lognorm_recorded_transform_on_new_cells_uses_all_genes():
    ref, new = make_counts(seed=1), make_counts(seed=2)
    scg.pp.preprocess(ref, 12, flavor="lognorm")
    info = ref.uns["clustergan_preprocess"]
    raw = new.X.copy()
    genes = list(info["genes"])
    pos = new.var_names.get_indexer(genes)
    scg.pp.preprocess(new, genes=genes, scale=info["scale"], flavor="lognorm")
    expected = np.log1p(raw[:, pos] / raw.sum(axis=1, keepdims=True) * 1e4) / info["scale"]
    np.testing.assert_allclose(new.X, expected, rtol=1e-5)


def test_lognorm_empty_cell_and_unknown_flavor_are_clear_errors():
    a = make_counts()
    a.X[3] = 0
    before = snapshot(a)
    with pytest.raises(ValueError, match=r"1 cells of adata.X have no counts.*filter_cells"):
        scg.pp.preprocess(a, 10, flavor="lognorm")
    assert_unchanged(a, before)
    with pytest.raises(ValueError, match="flavor must be one of"):
        scg.pp.preprocess(make_counts(), 10, flavor="seurat")
