import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from _helpers import assert_unchanged, make_counts, snapshot
from scipy import sparse
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import KNeighborsClassifier

import scgan_cluster as scg

# network settings small enough for a test; the recipe (ensembles, pooling) stays the default
FAST = {"max_iter": 40, "batch_size": 32, "n_latent": 5, "n_top_genes": 30}


def test_writes_results_like_leiden(counts):
    before_x = counts.X.copy()
    assert scg.tl.clustergan(counts, 3, **FAST) is None
    np.testing.assert_array_equal(counts.X, before_x)  # raw counts untouched
    labels = counts.obs["clustergan"]
    assert isinstance(labels.dtype, pd.CategoricalDtype)
    assert set(labels.cat.categories) <= {"0", "1", "2"}
    assert list(labels.cat.categories) == sorted(labels.cat.categories, key=int)
    assert counts.obsm["X_clustergan"].dtype == np.float32
    assert counts.obsm["X_clustergan"].shape[0] == counts.n_obs
    proba = counts.obsm["clustergan_proba"]
    assert proba.shape == (counts.n_obs, 3)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    # the confidence is the proba of the label
    rows = np.arange(counts.n_obs)
    np.testing.assert_allclose(
        counts.obs["clustergan_confidence"], proba[rows, labels.astype(int)], rtol=1e-6
    )
    # the default: 3 replicas on the genes, 15 on the principal components
    assert counts.obsm["clustergan_runs"].shape == (counts.n_obs, 18)
    uns = counts.uns["clustergan"]
    p = uns["params"]
    assert (p["n_clusters"], p["random_state"], p["flavor"]) == (3, 0, "lognorm")
    assert (p["prior"], p["beta_r"], p["pool"]) == ("learned", 1.0, "linkage")
    assert p["architecture"] == "mlp"
    assert (p["device"], p["scale"] > 0) == ("cpu", True)
    assert set(p["ensembles"]) == {"genes", "pcs"}
    assert (p["ensembles"]["genes"]["n_runs"], p["ensembles"]["pcs"]["n_runs"]) == (3, 15)
    members = uns["members"]
    assert list(members) == ["genes", "pcs"]
    assert list(members["genes"]["runs_columns"]) == [0, 1, 2]
    assert list(members["pcs"]["runs_columns"]) == list(range(3, 18))
    assert list(members["pcs"]["random_state"]) == list(range(15))
    assert members["pcs"]["n_inputs"] == 30  # 50 components capped at the 30 genes
    assert set(members["genes"]["history"]) == {str(r) for r in range(3)}
    assert uns["train_seconds"] == pytest.approx(
        members["genes"]["train_seconds"] + members["pcs"]["train_seconds"]
    )
    hist = uns["history"]
    for key in scg.train.HISTORY_KEYS:
        assert len(hist[key]) == len(hist["iteration"]) > 1
    assert hist["iteration"][-1] == 40
    assert len(uns["var_names"]) == 30


def test_the_default_clusters_and_its_outputs_tell_one_story():
    """End to end on simulated counts: the clusters are right and every output agrees."""
    a = make_counts(n_per_cluster=120, seed=3)
    scg.tl.clustergan(a, 3, max_iter=150, batch_size=32, n_top_genes=30)
    labels = a.obs["clustergan"].astype(int).to_numpy()
    assert adjusted_rand_score(a.obs["truth"], labels) > 0.9
    proba = a.obsm["clustergan_proba"]
    assert (proba.argmax(1) == labels).mean() >= 0.95
    knn = KNeighborsClassifier(15).fit(a.obsm["X_clustergan"], labels)
    assert (knn.predict(a.obsm["X_clustergan"]) == labels).mean() >= 0.9


def test_tl_writes_exactly_what_the_model_holds(counts):
    a = counts.copy()
    scg.tl.clustergan(a, 3, random_state=4, **FAST)
    model = scg.ClusterGAN(3, random_state=4, **FAST).fit(counts)
    np.testing.assert_array_equal(a.obs["clustergan"].astype(int).to_numpy(), model.labels_)
    np.testing.assert_array_equal(a.obsm["X_clustergan"], model.latent_)
    np.testing.assert_array_equal(a.obsm["clustergan_proba"], model.proba_.astype(np.float32))
    np.testing.assert_array_equal(a.obsm["clustergan_runs"], model.labels_runs_)
    np.testing.assert_array_equal(a.obs["clustergan_confidence"], model.confidence_)
    # and annotate() writes the same from the kept model
    b = counts.copy()
    model.annotate(b)
    for key in ("X_clustergan", "clustergan_proba", "clustergan_runs"):
        np.testing.assert_allclose(b.obsm[key], a.obsm[key], rtol=1e-5, atol=1e-6)
    pd.testing.assert_series_equal(b.obs["clustergan"], a.obs["clustergan"])


def test_same_seed_same_labels_other_seed_other_latent(counts):
    a, b, c = counts.copy(), counts.copy(), counts.copy()
    for x, seed in ((a, 0), (b, 0), (c, 10)):
        scg.tl.clustergan(x, 3, random_state=seed, n_runs=2, **FAST)
    np.testing.assert_array_equal(a.obs["clustergan"], b.obs["clustergan"])
    np.testing.assert_array_equal(a.obsm["X_clustergan"], b.obsm["X_clustergan"])
    assert not np.allclose(a.obsm["X_clustergan"], c.obsm["X_clustergan"])


def test_paper_flavor_is_the_paper_model_exactly(counts):
    a = counts.copy()
    scg.tl.clustergan(a, 3, flavor="paper", **FAST)
    opts = {k: v for k, v in FAST.items() if k != "n_top_genes"}
    net = scg.model.GANEnsemble(3, **opts).fit(counts, n_top_genes=30)  # the paper's defaults
    np.testing.assert_array_equal(a.obs["clustergan"].astype(int).to_numpy(), net.labels_)
    np.testing.assert_array_equal(a.obsm["X_clustergan"], net.latent_)  # zn
    params = a.uns["clustergan"]["params"]
    assert (params["flavor"], params["prior"], params["n_runs"]) == ("paper", "uniform", 1)
    assert params["beta_r"] == 0.0
    assert a.obsm["clustergan_runs"].shape == (a.n_obs, 1)
    # soft assignment to the network's own clusters: its argmax is the label
    labels = a.obs["clustergan"].astype(int).to_numpy()
    np.testing.assert_array_equal(a.obsm["clustergan_proba"].argmax(1), labels)


def test_copy_key_added_layer_and_argmax(counts):
    counts.layers["counts"] = counts.X.copy()
    counts.X = np.log1p(counts.X)
    before = snapshot(counts)
    out = scg.tl.clustergan(
        counts, 3, layer="counts", key_added="gan", assign="argmax", copy=True, n_runs=1, **FAST
    )
    assert_unchanged(counts, before)
    assert {"gan", "gan_confidence"} <= set(out.obs)
    assert {"X_gan", "gan_proba", "gan_runs"} <= set(out.obsm)
    np.testing.assert_array_equal(
        out.obs["gan"].astype(int).to_numpy(), out.obsm["gan_proba"].argmax(1)
    )
    assert out.uns["gan"]["params"]["layer"] == "counts"


def test_prepared_input_is_used_as_is_with_its_own_flavor(counts):
    scg.pp.preprocess(counts, 30, flavor="lognorm")
    x = counts.X.copy()
    scg.tl.clustergan(counts, 3, n_runs=2, **FAST)
    np.testing.assert_array_equal(counts.X, x)
    np.testing.assert_array_equal(counts.uns["clustergan"]["var_names"], counts.var_names)
    assert (
        counts.uns["clustergan"]["params"]["scale"] == counts.uns["clustergan_preprocess"]["scale"]
    )


def test_prepared_with_another_flavor_is_an_error(counts):
    scg.pp.preprocess(counts, 30)  # the paper's flavor
    before = snapshot(counts)
    with pytest.raises(ValueError, match="prepared by pp.preprocess with flavor 'paper'"):
        scg.tl.clustergan(counts, 3, **FAST)
    assert_unchanged(counts, before)
    scg.tl.clustergan(counts, 3, flavor="paper", **FAST)  # as the message says
    assert counts.uns["clustergan"]["params"]["flavor"] == "paper"


def test_sparse_input(counts_sparse):
    scg.tl.clustergan(counts_sparse, 3, n_runs=2, **FAST)
    assert sparse.issparse(counts_sparse.X)
    assert counts_sparse.obs["clustergan"].notna().all()


def test_preprocess_false_takes_values_as_is():
    a = scg.datasets.synthetic(n_per_cluster=50)
    scg.tl.clustergan(a, 4, preprocess=False, max_iter=20, batch_size=32, n_latent=4, n_runs=2)
    assert "scale" not in a.uns["clustergan"]["params"]
    assert len(a.uns["clustergan"]["var_names"]) == a.n_vars


def test_h5ad_roundtrip(counts, tmp_path):
    scg.tl.clustergan(counts, 3, n_runs=2, **FAST)
    path = tmp_path / "a.h5ad"
    counts.write_h5ad(path)
    back = ad.read_h5ad(path)
    pd.testing.assert_series_equal(back.obs["clustergan"], counts.obs["clustergan"])
    np.testing.assert_array_equal(back.obsm["X_clustergan"], counts.obsm["X_clustergan"])
    np.testing.assert_array_equal(back.obsm["clustergan_runs"], counts.obsm["clustergan_runs"])
    assert back.uns["clustergan"]["params"]["n_clusters"] == 3
    assert back.uns["clustergan"]["params"]["ensembles"]["pcs"]["n_pcs"] == 50
    np.testing.assert_allclose(
        back.uns["clustergan"]["history"]["wasserstein"],
        counts.uns["clustergan"]["history"]["wasserstein"],
    )


def test_scanpy_downstream_on_the_latent(counts):
    scg.tl.clustergan(counts, 3, n_runs=2, **FAST)
    sc.pp.neighbors(counts, use_rep="X_clustergan")
    sc.tl.umap(counts)
    assert counts.obsm["X_umap"].shape == (counts.n_obs, 2)
    ax = sc.pl.umap(counts, color="clustergan", show=False)
    assert ax is not None
    import matplotlib.pyplot as plt

    plt.close("all")


def test_neighbors_on_a_large_latent():
    """scanpy takes the pynndescent path from 8,192 cells (pynndescent 0.7 + scipy >= 1.14 broke it)."""
    rng = np.random.default_rng(0)
    a = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(9000)]))
    centers = rng.normal(size=(8, 30))
    labels = rng.integers(0, 8, 9000)
    a.obsm["X_clustergan"] = (centers[labels] + 0.1 * rng.normal(size=(9000, 30))).astype(
        np.float32
    )
    sc.pp.neighbors(a, use_rep="X_clustergan", n_neighbors=10)
    assert a.obsp["connectivities"].shape == (9000, 9000)
    # the neighbours recover the planted groups
    dist = a.obsp["distances"].tocsr()
    rows = np.repeat(np.arange(9000), np.diff(dist.indptr))
    assert (labels[rows] == labels[dist.indices]).mean() > 0.99
    b = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(5000)]))
    b.obsm["X_clustergan"] = a.obsm["X_clustergan"][:5000]
    sc.pp.neighbors(b, use_rep="X_clustergan", transformer="pynndescent")
    assert b.obsp["distances"].shape == (5000, 5000)


BAD = [
    ("n_clusters < 2", lambda a: scg.tl.clustergan(a, 1, **FAST), ValueError, "at least 2"),
    (
        "n_clusters > n_obs",
        lambda a: scg.tl.clustergan(a[:40].copy(), 41, **{**FAST, "batch_size": 8}),
        ValueError,
        "exceeds the number of cells",
    ),
    (
        "fewer cells than a batch",
        lambda a: scg.tl.clustergan(a, 3, **{**FAST, "batch_size": 500}),
        ValueError,
        "fewer cells .* than one batch",
    ),
    (
        "unknown layer",
        lambda a: scg.tl.clustergan(a, 3, layer="spliced", **FAST),
        ValueError,
        "Layer 'spliced' not found",
    ),
    ("bad key", lambda a: scg.tl.clustergan(a, 3, key_added="", **FAST), TypeError, "key_added"),
    (
        "bad assign",
        lambda a: scg.tl.clustergan(a, 3, assign="hdbscan", **FAST),
        ValueError,
        "assign",
    ),
    (
        "too many genes",
        lambda a: scg.tl.clustergan(a, 3, **{**FAST, "n_top_genes": 720}),
        ValueError,
        r"n_top_genes=720 .*\(60\)",
    ),
    ("not AnnData", lambda a: scg.tl.clustergan(a.X, 3, **FAST), TypeError, "AnnData"),
]


@pytest.mark.parametrize(("name", "call", "exc", "msg"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_leaves_adata_untouched(counts, name, call, exc, msg):
    before = snapshot(counts)
    with pytest.raises(exc, match=msg):
        call(counts)
    assert_unchanged(counts, before)


@pytest.mark.parametrize(
    ("mutate", "msg"),
    [
        (lambda a: a.X.__setitem__((3, 3), np.nan), "NaN or infinite"),
        (lambda a: a.X.__setitem__((3, 3), -np.inf), "NaN or infinite"),
        (lambda a: a.X.__setitem__((3, 3), -2), "negative values"),
        (lambda a: a.X.__setitem__((3, 3), 2.5), "non-integer values"),
    ],
)
def test_bad_values_leave_adata_untouched(counts, mutate, msg):
    mutate(counts)
    before = snapshot(counts)
    with pytest.raises(ValueError, match=msg):
        scg.tl.clustergan(counts, 3, **FAST)
    assert_unchanged(counts, before)


def test_nan_rejected_even_without_preprocessing(counts):
    counts.X[0, 0] = np.nan
    before = snapshot(counts)
    with pytest.raises(ValueError, match="NaN"):
        scg.tl.clustergan(counts, 3, preprocess=False, **FAST)
    assert_unchanged(counts, before)


def test_empty_duplicates_and_view(counts):
    empty = ad.AnnData(np.zeros((0, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="empty"):
        scg.tl.clustergan(empty, 3)
    no_genes = ad.AnnData(np.zeros((10, 0), dtype=np.float32))
    with pytest.raises(ValueError, match="empty"):
        scg.tl.clustergan(no_genes, 3)
    dup = counts.copy()
    dup.var_names = ["g"] * dup.n_vars
    before = snapshot(dup)
    with pytest.raises(ValueError, match="var_names_make_unique"):
        scg.tl.clustergan(dup, 3, **FAST)
    assert_unchanged(dup, before)
    view = counts[:100]
    with pytest.raises(ValueError, match="view"):
        scg.tl.clustergan(view, 3, **FAST)
    assert view.is_view
    assert "clustergan" not in view.obs
    out = scg.tl.clustergan(view, 3, copy=True, **FAST)
    assert not out.is_view
    assert out.n_obs == 100


def test_sparse_array_and_integer_input():
    a = make_counts()
    a.X = sparse.csr_array(a.X.astype(np.int32))
    scg.tl.clustergan(a, 3, **FAST)
    assert a.obs["clustergan"].notna().all()
    assert a.X.dtype == np.int32


@pytest.mark.parametrize(
    ("kwargs", "exc", "msg"),
    [
        ({"flavor": "seurat"}, ValueError, "flavor must be one of"),
        ({"learning_rate": 1e-3}, TypeError, "Unknown settings"),
        ({"ensembles": ["genes", "umap"]}, ValueError, "Unknown ensemble 'umap'"),
        ({"ensembles": "genes"}, TypeError, "ensembles must be"),
        ({"pool": "median"}, ValueError, "pool must be one of"),
        ({"n_runs": 0}, ValueError, "n_runs must be an integer >= 1"),
        ({"lr": -1.0}, ValueError, "lr must be a finite number > 0"),
        ({"random_state": -1}, TypeError, "random_state"),
        ({"preprocess": "yes"}, TypeError, "preprocess must be True or False"),
    ],
)
def test_bad_settings_leave_adata_untouched(counts, kwargs, exc, msg):
    before = snapshot(counts)
    with pytest.raises(exc, match=msg):
        scg.tl.clustergan(counts, 3, **{**FAST, **kwargs})
    assert_unchanged(counts, before)


def test_model_args_reach_the_networks(counts):
    model = scg.ClusterGAN(
        3, ensembles=["genes"], n_runs=2, beta_r=0.5, prior_floor=0.3, lr=2e-4, **FAST
    ).fit(counts)
    (member,) = model.members_
    assert member.train_config.beta_r == 0.5
    assert member.train_config.prior_floor == 0.3
    assert member.train_config.lr == 2e-4
    assert member.train_config.max_iter == 40
    assert member.n_latent == 5
    assert [rep.random_state for rep in member.replicas] == [0, 1]


def test_image_anndata_takes_the_paper_recipe():
    from _helpers import make_images

    x, _ = make_images(shape=(1, 8, 8))
    a = ad.AnnData((x.reshape(len(x), -1) / 255).astype(np.float32))
    a.uns["image_shape"] = [1, 8, 8]
    scg.tl.clustergan(a, 3, max_iter=5, batch_size=16, n_latent=3)
    params = a.uns["clustergan"]["params"]
    assert (params["flavor"], params["prior"], params["n_runs"]) == ("paper", "uniform", 1)
    assert params["architecture"] == "mnist"
    assert params["image_shape"] == [1, 8, 8]
    assert a.obsm["X_clustergan"].shape == (len(x), 3)
