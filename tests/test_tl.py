import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from _helpers import assert_unchanged, make_counts, snapshot
from scipy import sparse

import scgan_cluster as scg
from scgan_cluster._consensus import agreement, consensus, linkage_consensus

FAST = {"max_iter": 40, "batch_size": 32, "n_latent": 5, "n_top_genes": 30}


def test_writes_results_like_leiden(counts):
    before_x = counts.X.copy()
    assert scg.tl.clustergan(counts, 3, **FAST) is None
    np.testing.assert_array_equal(
        counts.X, before_x
    )  # raw counts untouched, preprocessing on a copy
    labels = counts.obs["clustergan"]
    assert isinstance(labels.dtype, pd.CategoricalDtype)
    assert set(labels.cat.categories) <= {"0", "1", "2"}
    assert list(labels.cat.categories) == sorted(labels.cat.categories, key=int)
    assert counts.obsm["X_clustergan"].shape == (counts.n_obs, 5)
    assert counts.obsm["X_clustergan"].dtype == np.float32
    proba = counts.obsm["clustergan_proba"]
    assert proba.shape == (counts.n_obs, 3)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    uns = counts.uns["clustergan"]
    p = uns["params"]
    assert p["n_clusters"] == 3
    assert p["random_state"] == 0
    assert p["sigma"] == 0.1
    assert p["beta_n"] == 10
    assert p["beta_c"] == 10
    assert p["gp_weight"] == 10
    assert p["n_critic"] == 5
    assert p["lr"] == 1e-4
    assert list(p["betas"]) == [0.5, 0.9]
    assert p["assign"] == "kmeans"
    assert p["device"] == "cpu"
    assert p["scale"] > 0
    hist = uns["history"]
    for key in scg.train.HISTORY_KEYS:
        assert len(hist[key]) == len(hist["iteration"]) > 1
    assert hist["iteration"][-1] == 40
    assert len(uns["var_names"]) == 30


def test_same_seed_same_labels_other_seed_other_latent(counts):
    a, b, c = counts.copy(), counts.copy(), counts.copy()
    for x, seed in ((a, 0), (b, 0), (c, 10)):  # replicas use seeds seed .. seed + 4
        scg.tl.clustergan(x, 3, random_state=seed, **FAST)
    np.testing.assert_array_equal(a.obs["clustergan"], b.obs["clustergan"])
    np.testing.assert_array_equal(a.obsm["X_clustergan"], b.obsm["X_clustergan"])
    assert not np.allclose(a.obsm["X_clustergan"], c.obsm["X_clustergan"])


def test_copy_key_added_layer_and_argmax(counts):
    counts.layers["counts"] = counts.X.copy()
    counts.X = np.log1p(counts.X)
    before = snapshot(counts)
    out = scg.tl.clustergan(
        counts, 3, layer="counts", key_added="gan", assign="argmax", copy=True, n_runs=1, **FAST
    )
    assert_unchanged(counts, before)
    assert "gan" in out.obs
    assert "X_gan" in out.obsm
    assert "gan_proba" in out.obsm
    np.testing.assert_array_equal(
        out.obs["gan"].astype(int).to_numpy(), out.obsm["gan_proba"].argmax(1)
    )
    assert out.uns["gan"]["params"]["layer"] == "counts"


def test_prepared_input_is_used_as_is(counts):
    scg.pp.preprocess(counts, 30)
    x = counts.X.copy()
    scg.tl.clustergan(counts, 3, **FAST)
    np.testing.assert_array_equal(counts.X, x)
    np.testing.assert_array_equal(counts.uns["clustergan"]["var_names"], counts.var_names)
    assert (
        counts.uns["clustergan"]["params"]["scale"] == counts.uns["clustergan_preprocess"]["scale"]
    )


def test_sparse_input(counts_sparse):
    scg.tl.clustergan(counts_sparse, 3, **FAST)
    assert sparse.issparse(counts_sparse.X)
    assert counts_sparse.obs["clustergan"].notna().all()


def test_preprocess_false_takes_values_as_is():
    a = scg.datasets.synthetic(n_per_cluster=50)
    scg.tl.clustergan(a, 4, preprocess=False, max_iter=20, batch_size=32, n_latent=4)
    assert "scale" not in a.uns["clustergan"]["params"]
    assert len(a.uns["clustergan"]["var_names"]) == a.n_vars


def test_h5ad_roundtrip(counts, tmp_path):
    scg.tl.clustergan(counts, 3, **FAST)
    path = tmp_path / "a.h5ad"
    counts.write_h5ad(path)
    back = ad.read_h5ad(path)
    pd.testing.assert_series_equal(back.obs["clustergan"], counts.obs["clustergan"])
    np.testing.assert_array_equal(back.obsm["X_clustergan"], counts.obsm["X_clustergan"])
    assert back.uns["clustergan"]["params"]["n_clusters"] == 3
    np.testing.assert_allclose(
        back.uns["clustergan"]["history"]["wasserstein"],
        counts.uns["clustergan"]["history"]["wasserstein"],
    )


def test_scanpy_downstream_on_the_latent(counts):
    scg.tl.clustergan(counts, 3, **FAST)
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


def test_n_runs_writes_every_replica(counts, tmp_path):
    a = counts.copy()
    scg.tl.clustergan(a, 3, n_runs=2, pool_candidates=False, **FAST)
    runs = a.obsm["clustergan_runs"]
    assert runs.shape == (a.n_obs, 2)
    info = a.uns["clustergan"]["runs"]
    assert list(info["random_state"]) == [0, 1]
    sel = info["selected"]
    np.testing.assert_array_equal(a.obs["clustergan"].astype(int).to_numpy(), runs[:, sel])
    # two replicas: a tied vote keeps the selected replica's label; confidence 1/2 or 1
    conf = a.obs["clustergan_confidence"].to_numpy()
    assert set(np.unique(conf)) <= {0.5, 1.0}
    assert set(info["history"]) == {"0", "1"}
    assert a.uns["clustergan"]["params"]["n_runs"] == 2
    a.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    np.testing.assert_array_equal(back.obsm["clustergan_runs"], runs)
    assert int(back.uns["clustergan"]["runs"]["selected"]) == sel


def test_leiden_assign_writes_k_clusters_and_the_replicas_leiden_labels(counts):
    from scgan_cluster._consensus import consensus
    from scgan_cluster._leiden import leiden_latent_k

    a = counts.copy()
    scg.tl.clustergan(a, 3, n_runs=2, assign="leiden", pool_candidates=False, **FAST)
    assert a.uns["clustergan"]["params"]["assign"] == "leiden"
    labels = a.obs["clustergan"]
    assert labels.dtype == "category"
    assert set(labels.astype(int)) == {0, 1, 2}
    runs = a.obsm["clustergan_runs"]
    np.testing.assert_array_equal(labels.astype(int).to_numpy(), consensus(runs, 3)[0])
    # every replica's labels are leiden on its own zn (here: the selected replica's latent)
    sel = int(a.uns["clustergan"]["runs"]["selected"])
    np.testing.assert_array_equal(runs[:, sel], leiden_latent_k(a.obsm["X_clustergan"], 3, sel))


# ---------------------------------------------------------------- recipes (flavor)
class _Stop(Exception):
    pass


@pytest.mark.parametrize(
    ("flavor", "kwargs", "expected"),
    [
        ("lognorm", {}, {"prior": "learned", "n_runs": 5, "max_iter": 4000, "beta_r": 1.0}),
        ("paper", {}, {"prior": "uniform", "n_runs": 1, "max_iter": 8000, "beta_r": 0.0}),
        (
            "lognorm",
            {"n_runs": 2, "max_iter": 10, "beta_r": 0.0},
            {"prior": "learned", "n_runs": 2, "max_iter": 10, "beta_r": 0.0},
        ),
        (
            "paper",
            {"prior": "learned", "beta_r": 2.0},
            {"prior": "learned", "n_runs": 1, "max_iter": 8000, "beta_r": 2.0},
        ),
    ],
)
def test_flavor_fills_the_recipe_unless_overridden(counts, monkeypatch, flavor, kwargs, expected):
    seen = {}

    class Recorder(scg.ClusterGAN):
        def fit(self, data, **fit_kwargs):
            seen.update(self.params, flavor=fit_kwargs["flavor"])
            raise _Stop

    monkeypatch.setattr(scg.tl._clustergan, "ClusterGAN", Recorder)
    before = snapshot(counts)
    with pytest.raises(_Stop):
        scg.tl.clustergan(counts, 3, flavor=flavor, **kwargs)
    assert_unchanged(counts, before)
    assert {k: seen[k] for k in expected} == expected
    assert seen["flavor"] == flavor


@pytest.mark.parametrize(
    ("flavor", "k", "kwargs", "expected"),
    [
        ("lognorm", 8, {}, 4000),
        ("lognorm", 10, {}, 5000),  # 500 per cluster above K = 8
        ("lognorm", 16, {}, 8000),
        ("paper", 16, {}, 8000),  # the paper's recipe: the same budget for every K
        ("lognorm", 16, {"max_iter": 30}, 30),  # the user's number wins
    ],
)
def test_recipe_budget_grows_with_k(counts, monkeypatch, flavor, k, kwargs, expected):
    seen = []

    class Recorder(scg.ClusterGAN):
        def fit(self, data, **fit_kwargs):
            seen.append(self.params)
            raise _Stop

    monkeypatch.setattr(scg.tl._clustergan, "ClusterGAN", Recorder)
    with pytest.raises(_Stop):
        scg.tl.clustergan(counts, k, flavor=flavor, n_pcs=0, **kwargs)
    assert seen[0]["max_iter"] == expected


def test_auto_pc_candidate_keeps_its_budget_for_any_k(counts, monkeypatch):
    seen = []

    def record(candidates, data, **fit_kwargs):
        seen.extend(m.params for m in candidates)
        raise _Stop

    monkeypatch.setattr(scg.tl._clustergan, "fit_by_agreement", record)
    with pytest.raises(_Stop):
        scg.tl.clustergan(counts, 16, n_pcs="auto", n_runs=2, n_top_genes=40)
    assert [p["max_iter"] for p in seen] == [8000, scg.model.PCS_SETTINGS["max_iter"]]
    with pytest.raises(TypeError, match="n_clusters"):
        scg.tl.clustergan(counts, 2.5)


@pytest.mark.parametrize(
    ("flavor", "n_genes", "kwargs", "expected"),
    [
        ("lognorm", 2500, {}, 2000),  # scanpy's usual number of highly variable genes
        ("paper", 2500, {}, 720),  # the paper's
        ("lognorm", 60, {}, 60),  # a smaller matrix: every gene
        ("paper", 60, {}, 60),
        ("lognorm", 2500, {"n_top_genes": 100}, 100),  # the user's number wins
    ],
)
def test_recipe_chooses_the_number_of_genes(monkeypatch, flavor, n_genes, kwargs, expected):
    seen = {}

    class Recorder(scg.ClusterGAN):
        def fit(self, data, **fit_kwargs):
            seen.update(fit_kwargs)
            raise _Stop

    monkeypatch.setattr(scg.tl._clustergan, "ClusterGAN", Recorder)
    a = make_counts(n_per_cluster=5, n_genes=n_genes)
    with pytest.raises(_Stop):
        scg.tl.clustergan(a, 3, flavor=flavor, **kwargs)
    assert seen["n_top_genes"] == expected


def test_image_anndata_takes_the_paper_settings(monkeypatch):
    seen = {}

    class Recorder(scg.ClusterGAN):
        def fit(self, data, **fit_kwargs):
            seen.update(self.params)
            raise _Stop

    monkeypatch.setattr(scg.tl._clustergan, "ClusterGAN", Recorder)
    images = ad.AnnData(np.zeros((8, 784), dtype=np.float32))
    images.uns["image_shape"] = [1, 28, 28]
    with pytest.raises(_Stop):
        scg.tl.clustergan(images, 3)
    assert (seen["prior"], seen["n_runs"], seen["max_iter"], seen["beta_r"]) == (
        "uniform",
        1,
        8000,
        0.0,
    )


def test_paper_flavor_is_the_paper_model_exactly(counts):
    a = counts.copy()
    scg.tl.clustergan(a, 3, flavor="paper", **FAST)
    opts = {k: v for k, v in FAST.items() if k != "n_top_genes"}
    model = scg.ClusterGAN(3, **opts).fit(counts, n_top_genes=30)  # the class: paper defaults
    np.testing.assert_array_equal(a.obs["clustergan"].astype(int).to_numpy(), model.labels_)
    np.testing.assert_array_equal(a.obsm["X_clustergan"], model.latent_)
    params = a.uns["clustergan"]["params"]
    assert (params["flavor"], params["prior"], params["n_runs"]) == ("paper", "uniform", 1)
    assert params["beta_r"] == 0.0
    assert "clustergan_confidence" not in a.obs


def test_default_recipe_outputs(counts):
    a = counts.copy()
    scg.tl.clustergan(a, 3, **FAST)
    params = a.uns["clustergan"]["params"]
    assert (params["flavor"], params["prior"], params["n_runs"]) == ("lognorm", "learned", 5)
    # both candidates' replicas vote (pool_candidates): 5 on genes, then 5 on PCs
    assert a.uns["clustergan"]["representation"]["pooled"] is True
    assert a.obsm["clustergan_runs"].shape == (a.n_obs, 10)
    assert a.uns["clustergan"]["runs"]["pooled_weights"].shape == (10,)
    conf = a.obs["clustergan_confidence"].to_numpy()
    # the winning label holds at least a K-th of the total vote weight
    assert np.all((conf >= 1 / 3 - 1e-6) & (conf <= 1.0 + 1e-6))
    with pytest.raises(ValueError, match="flavor must be one of"):
        scg.tl.clustergan(a, 3, flavor="seurat")


def test_beta_r_is_passed_to_the_model(counts):
    a, b = counts.copy(), counts.copy()
    scg.tl.clustergan(a, 3, n_runs=1, beta_r=0.0, **FAST)
    scg.tl.clustergan(b, 3, n_runs=1, **FAST)  # the default recipe's reconstruction term
    assert a.uns["clustergan"]["params"]["beta_r"] == 0.0
    assert b.uns["clustergan"]["params"]["beta_r"] == 1.0
    assert not np.allclose(a.obsm["X_clustergan"], b.obsm["X_clustergan"])


def test_prior_floor_is_passed_to_the_model(counts):
    a = counts.copy()
    scg.tl.clustergan(a, 3, n_runs=1, prior_floor=0.5, **FAST)
    assert a.uns["clustergan"]["params"]["prior_floor"] == 0.5
    b = counts.copy()
    scg.tl.clustergan(b, 3, n_runs=1, **FAST)
    assert b.uns["clustergan"]["params"]["prior_floor"] == 0.1


def test_n_pcs_is_passed_to_the_model_and_zero_means_genes(counts):
    a, b, c = counts.copy(), counts.copy(), counts.copy()
    scg.tl.clustergan(a, 3, n_runs=1, n_pcs=5, **FAST)
    params = a.uns["clustergan"]["params"]
    assert params["n_pcs"] == 5
    # principal components take their own learning rate and budget unless passed
    assert params["lr"] == scg.model.PCS_SETTINGS["lr"]
    assert params["max_iter"] == FAST["max_iter"]
    scg.tl.clustergan(b, 3, n_runs=1, n_pcs=0, **FAST)
    scg.tl.clustergan(c, 3, n_runs=1, **FAST)  # the recipe's "auto" needs replicas: genes
    assert b.uns["clustergan"]["params"]["n_pcs"] is None
    assert c.uns["clustergan"]["params"]["n_pcs"] is None
    assert "representation" not in c.uns["clustergan"]
    assert not np.allclose(a.obsm["X_clustergan"], b.obsm["X_clustergan"])
    before = counts.copy()
    with pytest.raises(ValueError, match="pass a smaller n_pcs"):
        scg.tl.clustergan(before, 3, n_runs=1, n_pcs=31, **FAST)
    assert "clustergan" not in before.obs
    assert "clustergan" not in before.uns


def test_n_pcs_auto_keeps_the_candidate_whose_replicas_agree_more(counts):
    a = counts.copy()
    scg.tl.clustergan(a, 3, n_runs=2, pool_candidates=False, **FAST)  # recipe's n_pcs="auto"
    rep = a.uns["clustergan"]["representation"]
    assert rep["n_pcs"] == 30  # 50 capped by the 30 genes kept
    want = "genes" if rep["agreement_genes"] >= rep["agreement_pcs"] else "pcs"
    assert rep["chosen"] == want
    # the kept labels are those of the chosen candidate fitted alone
    alone = counts.copy()
    scg.tl.clustergan(alone, 3, n_runs=2, n_pcs=0 if want == "genes" else 30, **FAST)
    np.testing.assert_array_equal(a.obs["clustergan"], alone.obs["clustergan"])
    assert a.uns["clustergan"]["params"]["n_pcs"] == (None if want == "genes" else 30)


def test_pool_candidates_votes_with_every_replica_of_both_ensembles(counts, tmp_path):
    a, b = counts.copy(), counts.copy()
    scg.tl.clustergan(a, 3, n_runs=2, pool_method="vote", **FAST)  # pool_candidates=True
    scg.tl.clustergan(b, 3, n_runs=2, pool_candidates=False, **FAST)  # the chosen one alone
    uns = a.uns["clustergan"]
    assert uns["representation"]["pooled"] is True
    assert b.uns["clustergan"]["representation"]["pooled"] is False
    runs = a.obsm["clustergan_runs"]
    assert runs.shape == (a.n_obs, 4)  # genes replicas, then the PCs'
    weights = uns["runs"]["pooled_weights"]
    np.testing.assert_allclose(weights, np.clip(agreement(runs), 0, None))
    # each column named by its ensemble and seed; the kept ensemble's seeds are the runs' seeds
    assert uns["runs"]["pooled_candidate"].tolist() == ["genes", "genes", "pcs", "pcs"]
    seeds = uns["runs"]["pooled_random_state"]
    kept = seeds[:2] if uns["representation"]["chosen"] == "genes" else seeds[2:]
    np.testing.assert_array_equal(kept, uns["runs"]["random_state"])
    # the default's output survives a round trip through h5ad
    a.write_h5ad(tmp_path / "pooled.h5ad")
    back = ad.read_h5ad(tmp_path / "pooled.h5ad")
    np.testing.assert_array_equal(back.obsm["clustergan_runs"], runs)
    np.testing.assert_array_equal(back.obs["clustergan"], a.obs["clustergan"])
    for key in ("pooled_weights", "pooled_candidate", "pooled_random_state"):
        np.testing.assert_array_equal(back.uns["clustergan"]["runs"][key], uns["runs"][key])
    labels, confidence, _, _ = consensus(runs, 3, weights=weights)
    np.testing.assert_array_equal(a.obs["clustergan"].astype(int), labels)
    np.testing.assert_allclose(a.obs["clustergan_confidence"], confidence, rtol=1e-6)
    # same training, so the latent is the chosen ensemble's either way
    np.testing.assert_array_equal(a.obsm["X_clustergan"], b.obsm["X_clustergan"])
    chosen = uns["representation"]["chosen"]
    np.testing.assert_array_equal(
        runs[:, :2] if chosen == "genes" else runs[:, 2:], b.obsm["clustergan_runs"]
    )


def test_pool_method_linkage_clusters_the_co_association(counts):
    a = counts.copy()
    scg.tl.clustergan(a, 3, n_runs=2, **FAST)  # the recipe's: pool_method="linkage"
    uns = a.uns["clustergan"]
    assert uns["representation"]["pool_method"] == "linkage"
    runs = a.obsm["clustergan_runs"]
    assert runs.shape == (a.n_obs, 4)
    weights = uns["runs"]["pooled_weights"]
    labels, confidence, _, _ = linkage_consensus(runs, 3, weights=weights)
    np.testing.assert_array_equal(a.obs["clustergan"].astype(int), labels)
    np.testing.assert_allclose(a.obs["clustergan_confidence"], confidence, rtol=1e-6)


def test_candidates_train_compare_and_pool_every_named_ensemble(counts, tmp_path):
    a, b, c = counts.copy(), counts.copy(), counts.copy()
    three = ("genes", "pcs", "genes_fast")
    scg.tl.clustergan(a, 3, n_runs=2, candidates=three, **FAST)
    uns = a.uns["clustergan"]
    rep = uns["representation"]
    assert rep["candidates"] == list(three)
    scores = [rep[f"agreement_{name}"] for name in three]
    assert rep["chosen"] == three[int(np.argmax(scores))]
    runs = a.obsm["clustergan_runs"]
    assert runs.shape == (a.n_obs, 6)
    assert uns["runs"]["pooled_candidate"].tolist() == [n for n in three for _ in range(2)]
    labels, _, _, _ = linkage_consensus(runs, 3, weights=uns["runs"]["pooled_weights"])
    np.testing.assert_array_equal(a.obs["clustergan"].astype(int), labels)
    a.write_h5ad(tmp_path / "three.h5ad")
    back = ad.read_h5ad(tmp_path / "three.h5ad")
    assert list(back.uns["clustergan"]["representation"]["candidates"]) == list(three)
    # naming the recipe's two is the default, replica for replica, and the first two
    # ensembles of three are those two
    scg.tl.clustergan(b, 3, n_runs=2, candidates=["genes", "pcs"], **FAST)
    scg.tl.clustergan(c, 3, n_runs=2, **FAST)
    np.testing.assert_array_equal(b.obsm["clustergan_runs"], c.obsm["clustergan_runs"])
    np.testing.assert_array_equal(b.obs["clustergan"], c.obs["clustergan"])
    assert c.uns["clustergan"]["representation"]["candidates"] == ["genes", "pcs"]
    np.testing.assert_array_equal(runs[:, :4], c.obsm["clustergan_runs"])


def test_candidates_take_their_own_budget_unless_passed(counts, monkeypatch):
    seen = []

    def record(models, data, **fit_kwargs):
        seen.append([(m.params["n_pcs"], m.params["lr"], m.params["max_iter"]) for m in models])
        raise _Stop

    monkeypatch.setattr(scg.tl._clustergan, "fit_by_agreement", record)
    pcs = scg.model.PCS_SETTINGS
    three = ("genes", "pcs", "genes_fast")
    with pytest.raises(_Stop):
        scg.tl.clustergan(counts, 3, n_runs=2, n_top_genes=40, candidates=three)
    # genes at the recipe's budget; PCs and the fast genes at PCS_SETTINGS' rate and budget
    assert seen[-1] == [
        (None, 1e-4, 4000),
        (40, pcs["lr"], pcs["max_iter"]),
        (None, pcs["lr"], pcs["max_iter"]),
    ]
    with pytest.raises(_Stop):  # the user's learning rate and budget win
        scg.tl.clustergan(
            counts, 3, n_runs=2, lr=3e-4, max_iter=70, candidates=("genes_fast", "genes")
        )
    assert seen[-1] == [(None, 3e-4, 70), (None, 3e-4, 70)]


@pytest.mark.parametrize(
    ("kwargs", "exc", "msg"),
    [
        ({"candidates": ("genes", "umap")}, ValueError, "names from"),
        ({"candidates": ("genes", "genes")}, ValueError, "at least two distinct"),
        ({"candidates": ("genes",)}, ValueError, "at least two distinct"),
        ({"candidates": "genes"}, TypeError, "list or tuple"),
        ({"candidates": ("genes", "pcs"), "n_pcs": 0}, ValueError, "pass n_pcs='auto'"),
        ({"candidates": ("genes", "pcs"), "n_runs": 1}, ValueError, "pass n_pcs='auto'"),
    ],
)
def test_candidates_bad_values_leave_adata_untouched(counts, kwargs, exc, msg):
    a = counts.copy()
    before = snapshot(a)
    with pytest.raises(exc, match=msg):
        scg.tl.clustergan(a, 3, **{"n_runs": 2, **kwargs}, **FAST)
    assert_unchanged(a, before)


def test_pool_candidates_bad_values(counts):
    a = counts.copy()
    with pytest.raises(ValueError, match="pass n_pcs='auto'"):
        scg.tl.clustergan(a, 3, n_runs=2, n_pcs=0, pool_candidates=True, **FAST)
    with pytest.raises(TypeError, match="pool_candidates must be"):
        scg.tl.clustergan(a, 3, n_runs=2, pool_candidates="yes", **FAST)
    with pytest.raises(ValueError, match="pool_method must be one of"):
        scg.tl.clustergan(a, 3, n_runs=2, pool_method="median", **FAST)
    assert "clustergan" not in a.obs
    assert "clustergan" not in a.uns


def test_n_pcs_bad_values(counts):
    a = counts.copy()
    with pytest.raises(ValueError, match="needs n_runs >= 2"):
        scg.tl.clustergan(a, 3, n_runs=1, n_pcs="auto", **FAST)
    with pytest.raises(ValueError, match="n_pcs must be an integer, 'auto' or None"):
        scg.tl.clustergan(a, 3, n_pcs="pca", **FAST)
    assert "clustergan" not in a.obs


class _Stub:
    def __init__(self, scores, n_runs=2):
        self.n_runs, self.scores, self.fitted = n_runs, scores, None

    def fit(self, data, **kwargs):
        self.fitted = (data, kwargs)
        self.replicas = [object()] * len(self.scores)
        self.selection_scores_ = np.asarray(self.scores)
        return self


def test_fit_by_agreement_picks_the_highest_mean_agreement_and_the_first_on_ties():
    from scgan_cluster.model import fit_by_agreement

    stubs = [_Stub([0.2, 0.4]), _Stub([0.5, 0.3]), _Stub([0.1, 0.1])]
    chosen, scores = fit_by_agreement(stubs, "data", flavor="lognorm")
    assert chosen == 1
    np.testing.assert_allclose(scores, [0.3, 0.4, 0.1])
    assert all(st.fitted == ("data", {"flavor": "lognorm"}) for st in stubs)
    assert fit_by_agreement([_Stub([0.5, 0.5]), _Stub([0.5, 0.5])], "data")[0] == 0
    with pytest.raises(ValueError, match="n_runs >= 2"):
        fit_by_agreement([_Stub([0.5], n_runs=1)], "data")


def test_compile_is_allowed_with_the_reconstruction_term():
    # the hand-written (compilable) steps include the default recipe's reconstruction term
    model = scg.ClusterGAN(3, compile=True, beta_r=1.0)
    assert model.params["compile"] is True
    assert model.train_config.beta_r == 1.0


def test_recipe_max_iter_values_and_bad_flavor():
    from scgan_cluster.model import recipe_max_iter

    assert [recipe_max_iter("lognorm", k) for k in (2, 8, 9, 10, 16)] == [
        4000,
        4000,
        4500,
        5000,
        8000,
    ]
    assert {recipe_max_iter("paper", k) for k in (2, 8, 16, 40)} == {scg.model.DEFAULT_MAX_ITER}
    with pytest.raises(ValueError, match="flavor must be one of"):
        recipe_max_iter("seurat", 8)
