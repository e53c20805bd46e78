"""The user's model: one clustering whatever the recipe, kept, reloaded and applied to new cells."""

import json

import anndata as ad
import numpy as np
import pytest
import torch
from _helpers import make_counts

import scgan_cluster as scg
from scgan_cluster.model._io import FORMAT

FAST = {"max_iter": 40, "batch_size": 32, "n_latent": 5, "n_top_genes": 30}


@pytest.fixture(scope="module")
def fitted():
    a = make_counts()
    return scg.ClusterGAN(3, n_runs=2, **FAST).fit(a), a


def test_defaults_are_the_recipe_of_tl():
    model = scg.ClusterGAN(3)
    assert model.recipe == scg.recipes.RECIPES["lognorm"]
    assert scg.ClusterGAN(3, flavor="paper").recipe == scg.recipes.RECIPES["paper"]
    assert "not trained" in repr(model)
    with pytest.raises(RuntimeError, match="not trained"):
        model.predict(make_counts())


def test_fit_holds_one_coherent_clustering(fitted):
    model, a = fitted
    assert len(model.members_) == 2
    assert len(model.replicas) == 4
    assert model.labels_runs_.shape == (a.n_obs, 4)
    assert model.labels_.dtype == np.int64
    np.testing.assert_allclose(model.proba_.sum(1), 1.0)
    np.testing.assert_array_equal(model.proba_.argmax(1), model.labels_)
    np.testing.assert_allclose(
        model.confidence_, model.proba_[np.arange(a.n_obs), model.labels_], rtol=1e-6
    )
    assert model.latent_.dtype == np.float32
    # the latent spans what the replicas' latents span (4 x (5 + 3) columns), at most 30
    assert model.latent_.shape == (a.n_obs, 30)
    # every replica's label of a training cell is the nearest-centre rule of predict
    for r, rep in enumerate(model.replicas):
        np.testing.assert_array_equal(model.labels_runs_[:, r], rep.predict(a))
    assert model.train_seconds_ == pytest.approx(sum(m.train_seconds_ for m in model.members_))
    # wall seconds per phase: the shared preprocessing, each ensemble's own preparation,
    # training and assignment, then pooling
    phases = ("preprocessing", "training", "assignment")
    assert list(model.fit_seconds_) == [
        "preprocessing",
        *(f"{name}: {p}" for name in ("genes", "pcs") for p in phases),
        "pooling",
    ]
    assert all(s >= 0 for s in model.fit_seconds_.values())
    for name, member in zip(("genes", "pcs"), model.members_, strict=True):
        assert model.fit_seconds_[f"{name}: training"] == member.train_seconds_


def test_predict_on_the_training_cells_gives_the_fit(fitted):
    model, a = fitted
    np.testing.assert_array_equal(model.predict(a), model.labels_)
    np.testing.assert_allclose(model.predict_proba(a), model.proba_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(
        model.get_latent_representation(a), model.latent_, rtol=1e-5, atol=1e-6
    )
    # any subset of the cells is labelled the same, cell by cell
    np.testing.assert_array_equal(model.predict(a[10:50]), model.labels_[10:50])


def test_new_cells_with_reordered_and_extra_genes(fitted):
    model, a = fitted
    b = a[:, a.var_names[::-1]].copy()  # the same genes in reverse order
    np.testing.assert_array_equal(model.predict(b), model.labels_)
    # a gene the model never saw, with many counts: ignored, also for the library size
    c = ad.AnnData(np.hstack([a.X, np.full((a.n_obs, 1), 50.0, dtype=np.float32)]), obs=a.obs)
    c.var_names = [*a.var_names, "not_a_training_gene"]
    np.testing.assert_array_equal(model.predict(c), model.labels_)


def test_new_cells_missing_genes(fitted):
    model, a = fitted
    used = set(model.var_names_)
    unused = [g for g in a.var_names if g not in used]
    assert unused  # 30 of the 60 genes were selected
    # a gene outside the model's 30 but counted in training's library sizes: a warning
    b = a[:, [g for g in a.var_names if g != unused[0]]].copy()
    with pytest.warns(UserWarning, match="1 of the 60 genes"):
        labels = model.predict(b)
    assert (labels == model.labels_).mean() > 0.9
    # a gene the networks take: a clear error naming it
    c = a[:, [g for g in a.var_names if g != model.var_names_[0]]].copy()
    with pytest.raises(ValueError, match="genes this transform/model needs are missing"):
        model.predict(c)


def test_generate_resembles_the_cluster(fitted):
    model, a = fitted
    x = model.generate(200, cluster=int(model.labels_[0]), random_state=0)
    assert x.shape == (200, 30)
    assert x.dtype == np.float32
    # drawn around the cluster in the latent of the replica with the largest weight
    lead = model.replicas[int(np.argmax(model.weights_))]
    k = int(model.labels_[0])
    cells = model.labels_ == k
    stats = model.cluster_latent_
    np.testing.assert_allclose(stats["mean"][k, :5], lead.latent_[cells].mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["mean"][k, 5:], lead.proba_[cells].mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["sd"][k], lead.latent_[cells].std(0), rtol=1e-5)
    np.testing.assert_array_equal(stats["size"], np.bincount(model.labels_, minlength=3))
    rng = np.random.default_rng(0)
    zn = stats["mean"][k, :5] + stats["sd"][k] * rng.standard_normal((200, 5))
    z = np.hstack([zn, np.tile(stats["mean"][k, 5:], (200, 1))]).astype(np.float32)
    np.testing.assert_allclose(x, lead.decode(z), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        model.generate(5, random_state=1), model.generate(5, random_state=1)
    )
    with pytest.raises(ValueError, match="cluster must be one of"):
        model.generate(3, cluster=7)


def test_save_load_roundtrip(fitted, tmp_path):
    model, a = fitted
    model.save(tmp_path / "m")
    state = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert set(state) == {"members", "fitted", "pool", "embedding"}
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (config["kind"], config["format"]) == ("ClusterGAN", FORMAT)
    loaded = scg.ClusterGAN.load(tmp_path / "m")
    assert loaded.recipe_ == model.recipe_
    assert loaded.fit_seconds_ == model.fit_seconds_
    np.testing.assert_array_equal(loaded.labels_, model.labels_)
    np.testing.assert_array_equal(loaded.latent_, model.latent_)
    np.testing.assert_array_equal(loaded.predict(a), model.labels_)
    np.testing.assert_allclose(loaded.get_latent_representation(a), model.latent_, atol=1e-6)
    np.testing.assert_array_equal(
        loaded.generate(4, cluster=int(model.labels_[0]), random_state=2),
        model.generate(4, cluster=int(model.labels_[0]), random_state=2),
    )
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(tmp_path / "m")
    model.save(tmp_path / "m", overwrite=True)
    assert not list((tmp_path / "m").glob("*.part"))


def test_load_errors(fitted, tmp_path):
    model, a = fitted
    with pytest.raises(FileNotFoundError, match="not a directory of a saved model"):
        scg.ClusterGAN.load(tmp_path / "nothing")
    model.save(tmp_path / "m")
    config_file = tmp_path / "m" / "config.json"
    config = json.loads(config_file.read_text())
    # another format version
    config_file.write_text(json.dumps({**config, "format": FORMAT + 1}))
    with pytest.raises(ValueError, match="reads format"):
        scg.ClusterGAN.load(tmp_path / "m")
    # a network-level model's directory
    config_file.write_text(json.dumps({**config, "kind": "GANEnsemble"}))
    with pytest.raises(ValueError, match=r"load it with GANEnsemble.load\(\)"):
        scg.ClusterGAN.load(tmp_path / "m")
    # a damaged config: not JSON, or missing what the model needs
    config_file.write_text("{not json")
    with pytest.raises(ValueError, match="damaged model"):
        scg.ClusterGAN.load(tmp_path / "m")
    config_file.write_text(json.dumps({k: v for k, v in config.items() if k != "members"}))
    with pytest.raises(ValueError, match="damaged ClusterGAN"):
        scg.ClusterGAN.load(tmp_path / "m")
    (tmp_path / "m" / "model.pt").write_bytes(b"garbage")
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="cannot be read"):
        scg.ClusterGAN.load(tmp_path / "m")


def test_a_failed_fit_leaves_the_model_as_it_was(fitted):
    model, a = fitted
    labels = model.labels_.copy()
    bad = a.copy()
    bad.X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad)
    np.testing.assert_array_equal(model.labels_, labels)
    np.testing.assert_array_equal(model.predict(a), labels)


def test_paper_recipe_is_one_network_with_the_same_interface(tmp_path):
    a = make_counts()
    opts = {k: v for k, v in FAST.items() if k != "n_top_genes"}
    model = scg.ClusterGAN(3, flavor="paper", **FAST).fit(a)
    net = scg.model.GANEnsemble(3, **opts).fit(a, n_top_genes=30)
    (member,) = model.members_
    assert member.n_runs == 1
    assert model.pool_ is None
    np.testing.assert_array_equal(model.labels_, net.labels_)
    np.testing.assert_array_equal(model.latent_, net.latent_)
    # soft assignment to the KMeans centres: argmax is the label, rows sum to 1
    np.testing.assert_array_equal(model.proba_.argmax(1), model.labels_)
    np.testing.assert_allclose(model.proba_.sum(1), 1.0)
    np.testing.assert_array_equal(model.predict(a), model.labels_)
    model.save(tmp_path / "p")
    back = scg.ClusterGAN.load(tmp_path / "p")
    np.testing.assert_array_equal(back.predict(a), model.labels_)
    np.testing.assert_allclose(back.predict_proba(a), model.proba_, atol=1e-9)
    assert back.generate(3).shape == (3, 30)


def test_ensembles_of_different_sizes_pool_every_replica_and_reload(tmp_path):
    a = make_counts()
    ensembles = [
        scg.recipes.Ensemble("genes", n_runs=2),
        scg.recipes.Ensemble("pcs", n_pcs=5, n_runs=3),
    ]
    model = scg.ClusterGAN(3, ensembles=ensembles, **FAST).fit(a)
    assert [len(m.replicas) for m in model.members_] == [2, 3]
    assert model.labels_runs_.shape == (a.n_obs, 5)
    assert model.weights_.shape == (5,)
    # replica r of each ensemble has seed random_state + r
    seeds = [rep.random_state for m in model.members_ for rep in m.replicas]
    assert seeds == [0, 1, 0, 1, 2]
    model.save(tmp_path / "m")
    loaded = scg.ClusterGAN.load(tmp_path / "m")
    assert [e.n_runs for e in loaded.recipe_.ensembles] == [2, 3]
    np.testing.assert_array_equal(loaded.predict(a), model.labels_)


def test_a_model_loads_with_the_recipe_it_was_saved_with(fitted, tmp_path, monkeypatch):
    model, a = fitted
    model.save(tmp_path / "m")
    # a later version whose default recipe is another one
    changed = {**scg.recipes.RECIPES, "lognorm": scg.recipes.RECIPES["lognorm_fast"]}
    monkeypatch.setattr(scg.recipes, "RECIPES", changed)
    loaded = scg.ClusterGAN.load(tmp_path / "m")
    assert loaded.recipe == model.recipe
    assert loaded.recipe_ == model.recipe_
    np.testing.assert_array_equal(loaded.predict(a), model.labels_)


def test_vote_pool_and_argmax_assign():
    a = make_counts()
    model = scg.ClusterGAN(3, n_runs=2, pool="vote", assign="argmax", **FAST).fit(a)
    assert model.pool_.method == "vote"
    np.testing.assert_array_equal(model.proba_.argmax(1), model.labels_)
    np.testing.assert_array_equal(model.predict(a), model.labels_)
    # the vote's proba is each cluster's share of the replicas' weight
    w = model.weights_ / model.weights_.sum()
    expected = np.zeros((a.n_obs, 3))
    for r in range(4):
        expected[np.arange(a.n_obs), model.pool_.maps[r][model.labels_runs_[:, r]]] += w[r]
    np.testing.assert_allclose(model.proba_, expected)


def test_an_interrupted_fit_resumes_from_its_checkpoints(fitted, tmp_path, monkeypatch):
    from scgan_cluster.model import _ensemble

    model, a = fitted
    real = _ensemble.train_clustergan

    def stop_pcs_midway(*args, checkpoint=None, callback=None, **kwargs):
        """The genes ensemble trains through; the principal components' stops at iteration 35."""

        def stop(it, record):
            if checkpoint.name == "pcs.pt" and it == 35:
                raise KeyboardInterrupt

        return real(*args, checkpoint=checkpoint, callback=stop, **kwargs)

    monkeypatch.setattr(_ensemble, "train_clustergan", stop_pcs_midway)
    resumed = scg.ClusterGAN(3, n_runs=2, **FAST)
    with pytest.raises(KeyboardInterrupt):
        resumed.fit(a, checkpoint_dir=tmp_path, checkpoint_every=10)
    assert not resumed.is_trained  # nothing half-fitted is left on the model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["genes.pt", "pcs.pt"]
    assert torch.load(tmp_path / "pcs.pt", weights_only=True)["iteration"] == 32  # last block end
    monkeypatch.setattr(_ensemble, "train_clustergan", real)
    resumed.fit(a, checkpoint_dir=tmp_path, checkpoint_every=10)
    # the same networks as the fit that ran through: same labels, latent and soft assignment
    np.testing.assert_array_equal(resumed.labels_runs_, model.labels_runs_)
    np.testing.assert_array_equal(resumed.labels_, model.labels_)
    np.testing.assert_array_equal(resumed.latent_, model.latent_)
    np.testing.assert_array_equal(resumed.proba_, model.proba_)
    for mine, theirs in zip(resumed.replicas, model.replicas, strict=True):
        for t1, t2 in zip(
            mine.generator.state_dict().values(),
            theirs.generator.state_dict().values(),
            strict=True,
        ):
            assert torch.equal(t1, t2)
    with pytest.raises(TypeError, match="checkpoint_dir must be a path"):
        scg.ClusterGAN(3, n_runs=2, **FAST).fit(a, checkpoint_dir=3)


def test_the_ensembles_share_one_preprocessing(monkeypatch):
    """The cells are read and transformed once per fit, not once per ensemble."""
    import scgan_cluster.adapters._inputs as inputs

    calls = []
    original = inputs.fit_transform

    def counted(*args, **kwargs):
        calls.append(args[1:])
        return original(*args, **kwargs)

    monkeypatch.setattr(inputs, "fit_transform", counted)
    a = make_counts()
    model = scg.ClusterGAN(3, n_runs=2, **FAST).fit(a)
    assert len(calls) == 1
    genes, pcs = model.members_
    np.testing.assert_array_equal(genes.var_names, pcs.var_names)
    assert genes.transform == pcs.transform
    assert pcs.projection is not None
    assert genes.projection is None


def test_concurrent_ensembles_give_the_sequential_fit():
    a = make_counts()
    kw = {"max_iter": 40, "batch_size": 32, "n_top_genes": 30}
    one_by_one = scg.ClusterGAN(3, concurrent=False, **kw).fit(a)
    together = scg.ClusterGAN(3, concurrent=True, **kw).fit(a)
    np.testing.assert_array_equal(together.labels_runs_, one_by_one.labels_runs_)
    # overlapping clocks: the longest ensemble's training, within the wall time of them all
    trained = [m.train_seconds_ for m in together.members_]
    assert together.train_seconds_ == max(trained)
    assert max(trained) <= together.fit_seconds_["ensembles together"]
    assert one_by_one.train_seconds_ == pytest.approx(
        sum(m.train_seconds_ for m in one_by_one.members_)
    )
    assert "ensembles together" not in one_by_one.fit_seconds_
    np.testing.assert_array_equal(together.labels_, one_by_one.labels_)
    for r1, r2 in zip(together.replicas, one_by_one.replicas, strict=True):
        for t1, t2 in zip(
            r1.generator.state_dict().values(), r2.generator.state_dict().values(), strict=True
        ):
            assert torch.equal(t1, t2)


def test_a_failing_concurrent_ensemble_stops_the_other_and_raises_its_error(monkeypatch):
    fit = scg.model.GANEnsemble.fit
    ended = {}

    def fit_or_fail(self, *args, **kwargs):
        if self.n_pcs is not None:
            raise ValueError("the components ensemble failed")
        try:
            return fit(self, *args, **kwargs)
        except BaseException as err:
            ended["genes"] = err
            raise

    monkeypatch.setattr(scg.model.GANEnsemble, "fit", fit_or_fail)
    a = make_counts()
    before = a.copy()
    # the genes ensemble would train for a long time: it must stop at a record instead
    model = scg.ClusterGAN(3, concurrent=True, max_iter=3000, batch_size=32, n_top_genes=30)
    with pytest.raises(ValueError, match="components ensemble failed"):
        model.fit(a)
    assert "another ensemble failed" in str(ended["genes"])
    assert not model.is_trained
    np.testing.assert_array_equal(a.X, before.X)


def test_cuda_graph_needs_a_cuda_device():
    a = make_counts()
    model = scg.model.GANEnsemble(3, max_iter=20, batch_size=32, cuda_graph=True, device="cpu")
    with pytest.raises(ValueError, match="cuda_graph=True needs a CUDA device"):
        model.fit(a, n_top_genes=30)
    assert not model.is_trained
    with pytest.raises(TypeError, match="cuda_graph must be True or False"):
        scg.model.GANEnsemble(3, cuda_graph="yes")
    with pytest.raises(TypeError, match="concurrent must be True or False"):
        scg.ClusterGAN(3, concurrent="yes")
