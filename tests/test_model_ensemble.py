import json

import numpy as np
import pytest
import torch
from _helpers import make_counts
from scipy import sparse

import scgan_cluster as scg
from scgan_cluster._consensus import agreement, consensus
from scgan_cluster._leiden import leiden_latent_k

FAST = {"max_iter": 40, "batch_size": 32}


@pytest.fixture(scope="module")
def trained():
    a = make_counts()
    return scg.model.GANEnsemble(3, n_latent=5, **FAST).fit(a, n_top_genes=30), a


def test_fit_sets_results(trained):
    model, a = trained
    assert model.is_trained
    assert model.labels_.shape == (a.n_obs,)
    assert set(model.labels_) <= {0, 1, 2}
    assert model.latent_.shape == (a.n_obs, 5)
    assert model.latent_.dtype == np.float32
    np.testing.assert_allclose(model.proba_.sum(1), 1.0, rtol=1e-5)
    assert model.cluster_centers_.shape == (3, 8)
    assert len(model.var_names) == 30
    assert model.history_["iteration"][-1] == 40
    assert model.scale == pytest.approx(np.log2(1 + a[:, list(model.var_names)].X.max()))


def test_latent_and_predict_on_training_cells_match_fit(trained):
    model, a = trained
    np.testing.assert_allclose(model.get_latent_representation(a), model.latent_, atol=1e-6)
    full = model.get_latent_representation(a, representation="full")
    assert full.shape == (a.n_obs, 8)
    np.testing.assert_allclose(
        model.get_latent_representation(a, representation="proba"), model.proba_, atol=1e-6
    )
    # nearest KMeans centre == the KMeans labels of training (KMeans converged)
    np.testing.assert_array_equal(model.predict(a), model.labels_)
    np.testing.assert_array_equal(model.predict(a, assign="argmax"), model.proba_.argmax(1))


def test_predict_aligns_genes_by_name(trained):
    model, a = trained
    shuffled = a[:, a.var_names[::-1]].copy()
    shuffled.var_names = list(shuffled.var_names)
    np.testing.assert_array_equal(model.predict(shuffled), model.labels_)
    sp = shuffled.copy()
    sp.X = sparse.csr_matrix(sp.X)
    np.testing.assert_array_equal(model.predict(sp), model.labels_)
    with pytest.raises(ValueError, match="missing from adata.var_names"):
        model.predict(a[:, : a.n_vars // 2])
    with pytest.raises(ValueError, match="representation must be"):
        model.get_latent_representation(a, representation="z")


def test_predict_on_prepared_new_data(trained):
    model, a = trained
    b = a.copy()
    scg.pp.preprocess(b, genes=model.var_names, scale=model.scale)
    np.testing.assert_array_equal(model.predict(b), model.labels_)
    c = a.copy()
    c.X = c.X * 3  # deeper sequencing: its own maximum gives another scale, which is warned about
    scg.pp.preprocess(c, genes=model.var_names)
    with pytest.warns(UserWarning, match="not on the training scale"):
        model.predict(c)


def test_generate(trained):
    model, _ = trained
    x = model.generate(12, cluster=1, random_state=3)
    assert x.shape == (12, 30)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, model.generate(12, cluster=1, random_state=3))
    assert not np.array_equal(x, model.generate(12, cluster=2, random_state=3))
    assert model.generate(4).shape == (4, 30)
    with pytest.raises(ValueError, match="cluster must be"):
        model.generate(3, cluster=3)
    with pytest.raises(ValueError, match="n must be"):
        model.generate(0)


def test_save_load_roundtrip(trained, tmp_path):
    model, a = trained
    model.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["config.json", "model.pt", "var_names.json"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["params"]["sigma"] == 0.1
    assert config["params"]["betas"] == [0.5, 0.9]
    loaded = scg.model.GANEnsemble.load(tmp_path / "m", device="cpu")
    assert loaded.params == model.params
    np.testing.assert_array_equal(loaded.var_names, model.var_names)
    assert loaded.scale == model.scale
    np.testing.assert_array_equal(loaded.predict(a), model.predict(a))
    np.testing.assert_allclose(
        loaded.get_latent_representation(a), model.get_latent_representation(a)
    )
    np.testing.assert_array_equal(
        loaded.generate(5, random_state=1), model.generate(5, random_state=1)
    )
    assert loaded.history_ == model.history_
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(tmp_path / "m")
    model.save(tmp_path / "m", overwrite=True)
    with pytest.raises(FileNotFoundError, match="not a saved GANEnsemble"):
        scg.model.GANEnsemble.load(tmp_path)


def test_weights_load_with_weights_only(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(state) == {"networks"}
    assert set(state["networks"]) == {
        "generator",
        "encoder",
        "critic",
        "prior",
        "cluster_centers",
        "center_spread",
    }


def test_array_input_model_roundtrip(tmp_path):
    a = make_counts()
    model = scg.model.GANEnsemble(3, n_latent=4, **FAST).fit(a.X, n_top_genes=20)
    np.testing.assert_array_equal(model.predict(a.X), model.labels_)
    model.save(tmp_path)
    loaded = scg.model.GANEnsemble.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict(sparse.csr_matrix(a.X)), model.labels_)
    with pytest.raises(ValueError, match="trained on 60 columns"):
        loaded.predict(a.X[:, :10])


def test_argmax_model_and_unfitted_errors():
    a = make_counts()
    model = scg.model.GANEnsemble(3, assign="argmax", **FAST)
    with pytest.raises(RuntimeError, match="not trained"):
        model.predict(a)
    model.fit(a, n_top_genes=20)
    assert model.cluster_centers_ is None
    np.testing.assert_array_equal(model.labels_, model.proba_.argmax(1))
    with pytest.raises(ValueError, match="no centres for assign=.kmeans."):
        model.predict(a, assign="kmeans")


@pytest.mark.parametrize(
    ("kwargs", "exc", "msg"),
    [
        ({"n_clusters": 1}, ValueError, "at least 2"),
        ({"n_clusters": 2.5}, TypeError, "integer"),
        ({"n_latent": 0}, ValueError, "n_latent"),
        ({"architecture": "conv"}, ValueError, "Unknown architecture"),
        ({"architecture_options": {"depth": 2}}, ValueError, "takes the options"),
        (
            {"architecture": "mlp", "architecture_options": {"depth": 2}},
            ValueError,
            "takes the options",
        ),
        ({"sigma": -1}, ValueError, "sigma"),
        ({"assign": "hdbscan"}, ValueError, "assign"),
        ({"prior": "dirichlet"}, ValueError, "prior"),
        ({"prior_floor": 1.5}, ValueError, "prior_floor"),
        ({"prior_floor": -0.1}, ValueError, "prior_floor"),
        ({"combine": "mean"}, ValueError, "combine"),
        ({"device": "tpu"}, ValueError, "device"),
        ({"random_state": -3}, TypeError, "random_state"),
    ],
)
def test_bad_settings(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        scg.model.GANEnsemble(**{"n_clusters": 3, **kwargs})


def test_device_auto_is_cpu_here():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert scg.model.GANEnsemble(3).device == torch.device("cpu")
    assert scg.model.GANEnsemble(3, device="cpu").device.type == "cpu"


def test_fit_callback_sees_the_model_during_training():
    a = make_counts()
    seen = []

    def cb(model, it):
        seen.append((it, model.get_latent_representation(a).shape))

    model = scg.model.GANEnsemble(3, n_latent=4, max_iter=20, batch_size=32).fit(
        a, n_top_genes=20, callback=cb
    )
    assert [s[0] for s in seen] == list(range(1, 21))
    assert all(s[1] == (a.n_obs, 4) for s in seen)
    assert model.encoder.training is False


@pytest.mark.parametrize("n_runs", [1, 3])
def test_snapshot_in_the_callback_is_the_model_so_far_and_leaves_training_alone(n_runs):
    a = make_counts()
    settings = {"n_latent": 4, "max_iter": 20, "batch_size": 32, "n_runs": n_runs}
    plain = scg.model.GANEnsemble(3, **settings).fit(a, n_top_genes=20)
    snaps = {}

    def cb(model, it):
        if it in (10, 20):
            snaps[it] = model.snapshot()

    model = scg.model.GANEnsemble(3, **settings).fit(a, n_top_genes=20, callback=cb)
    # taking snapshots changed nothing in the training
    for name in ("generator", "encoder", "critic"):
        for p, q in zip(
            getattr(plain, name).state_dict().values(),
            getattr(model, name).state_dict().values(),
            strict=True,
        ):
            assert torch.equal(p, q)
    np.testing.assert_array_equal(model.labels_, plain.labels_)
    # the last iteration's snapshot is the fitted model; the earlier one is another model
    last, early = snaps[20], snaps[10]
    np.testing.assert_array_equal(last.labels_, model.labels_)
    np.testing.assert_array_equal(last.predict(a), model.predict(a))
    np.testing.assert_allclose(last.latent_, model.latent_, atol=1e-6)
    assert not np.allclose(early.latent_, model.latent_, atol=1e-3)
    assert early.labels_.shape == (a.n_obs,)
    assert early.history_ == {}
    assert 0 < early.train_seconds_ <= last.train_seconds_
    if n_runs > 1:
        assert len(early.replicas) == n_runs
        assert early.labels_runs_.shape == (a.n_obs, n_runs)
        np.testing.assert_array_equal(last.labels_runs_, model.labels_runs_)
    assert not hasattr(model, "_live")
    with pytest.raises(RuntimeError, match="callback of a running fit"):
        model.snapshot()


@pytest.mark.parametrize("n_runs", [1, 2])
def test_a_resumed_fit_counts_the_training_seconds_before_its_checkpoint(n_runs, tmp_path):
    a = make_counts()
    settings = {"n_latent": 4, "max_iter": 80, "batch_size": 32, "n_runs": n_runs}
    path = tmp_path / "run.pt"

    def stop(model, it):
        if it == 70:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # after the checkpoint at 64 (whole blocks of 32)
        scg.model.GANEnsemble(3, **settings).fit(
            a, n_top_genes=20, callback=stop, checkpoint=path, checkpoint_every=32
        )
    saved = torch.load(path, weights_only=True)
    saved["seconds"] = 1000.0  # as if the first part had trained for 1,000 s
    torch.save(saved, path)
    snaps = []
    model = scg.model.GANEnsemble(3, **settings).fit(
        a,
        n_top_genes=20,
        callback=lambda m, it: snaps.append(m.snapshot().train_seconds_),
        checkpoint=path,
    )
    # the snapshots' clock, the model's training seconds and the training phase go on from
    # the checkpoint's; the assignment is what this call spent after training
    assert snaps
    assert all(1000 < s < 1000 + 60 for s in snaps)
    assert 1000 < model.train_seconds_ < 1000 + 60
    assert model.fit_seconds_["training"] == model.train_seconds_
    assert model.fit_seconds_["assignment"] < 60


def test_failed_refit_keeps_the_trained_model():
    a = make_counts()
    model = scg.model.GANEnsemble(3, n_latent=4, max_iter=20, batch_size=32).fit(a, n_top_genes=20)
    labels, encoder, genes = model.labels_.copy(), model.encoder, model.var_names.copy()

    def interrupt(m, it):
        if it == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(a, n_top_genes=30, callback=interrupt)
    assert model.encoder is encoder
    np.testing.assert_array_equal(model.labels_, labels)
    np.testing.assert_array_equal(model.var_names, genes)
    np.testing.assert_array_equal(model.predict(a), labels)
    fresh = scg.model.GANEnsemble(3, max_iter=20, batch_size=32)
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(a, n_top_genes=20, callback=interrupt)
    assert not fresh.is_trained


# ---------------------------------------------------------------- architectures and images
def test_architecture_defaults_apply_unless_overridden():
    m = scg.model.GANEnsemble(10, architecture="fashion_mnist")
    assert m.n_latent == 40
    assert m.train_config.beta_n == 0.0
    assert m.train_config.batch_size == 64
    m = scg.model.GANEnsemble(10, architecture="fashion_mnist", beta_n=5.0, n_latent=12, lr=3e-4)
    assert (m.n_latent, m.train_config.beta_n, m.train_config.lr) == (12, 5.0, 3e-4)
    assert scg.model.GANEnsemble(10, architecture="pendigits").n_latent == 5
    assert scg.model.GANEnsemble(10, architecture="synthetic").n_latent == 6
    assert scg.model.GANEnsemble(20, architecture="coil20").n_latent == 20
    m = scg.model.GANEnsemble(8)  # auto: the 10x settings until the data say otherwise
    assert m.architecture == "auto"
    assert m.n_latent == 30
    assert m.params["architecture"] == "auto"


@pytest.fixture(scope="module")
def image_model():
    from _helpers import TINY_CONV, make_images

    x, y = make_images(shape=(1, 8, 8))
    model = scg.model.GANEnsemble(
        3, architecture_options=TINY_CONV, max_iter=20, batch_size=16, n_latent=4
    ).fit(x)
    return model, x, y


def test_image_model_fit_latent_predict_generate(image_model):
    model, x, _ = image_model
    assert model.architecture == "mnist"  # 8 x 8 grey images: the first conv entry that fits
    assert model.image_shape == (1, 8, 8)
    assert isinstance(model.generator, scg.nn.ConvGenerator)
    assert model.latent_.shape == (len(x), 4)
    np.testing.assert_allclose(model.get_latent_representation(x), model.latent_, atol=1e-5)
    np.testing.assert_array_equal(model.predict(x), model.labels_)
    np.testing.assert_array_equal(model.predict(torch.from_numpy(x).float() / 255), model.labels_)
    np.testing.assert_array_equal(model.predict(x.reshape(len(x), -1)), model.labels_)
    g = model.generate(6, cluster=2, random_state=0)
    assert g.shape == (6, 1, 8, 8)
    assert g.min() >= 0
    assert g.max() <= 1
    z = np.zeros((2, 4 + 3), dtype=np.float32)
    z[:, 4 + 2] = 1
    assert model.decode(z).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="z must have shape"):
        model.decode(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="trained on images"):
        model.predict(np.zeros((3, 1, 4, 4)))
    assert "images [1, 8, 8]" in repr(model)


def test_image_model_save_load_roundtrip(image_model, tmp_path):
    model, x, _ = image_model
    model.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["image_shape"] == [1, 8, 8]
    assert config["params"]["architecture"] == "mnist"
    loaded = scg.model.GANEnsemble.load(tmp_path)
    assert loaded.image_shape == (1, 8, 8)
    assert loaded.params == model.params
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_array_equal(
        loaded.generate(3, random_state=2), model.generate(3, random_state=2)
    )


def test_image_ensemble_trains_conv_replicas_together(image_model, tmp_path):
    from _helpers import TINY_CONV

    single, x, y = image_model
    settings = {"architecture_options": TINY_CONV, "max_iter": 20, "batch_size": 16}
    model = scg.model.GANEnsemble(3, n_latent=4, n_runs=2, **settings).fit(x)
    assert model.labels_runs_.shape == (len(x), 2)
    assert [type(r.encoder).__name__ for r in model.replicas] == ["ConvEncoder"] * 2
    # replica 0 has the single model's seed (0): the same network up to the rounding of the
    # grouped convolutions (tested exactly in float64 in tests/test_train.py)
    for p, q in zip(
        model.replicas[0].encoder.parameters(), single.encoder.parameters(), strict=True
    ):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-3)
    assert model.generate(2, cluster=0).shape == (2, 1, 8, 8)
    model.save(tmp_path / "conv")
    loaded = scg.model.GANEnsemble.load(tmp_path / "conv")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_image_anndata_through_tl_and_a_vector_architecture_on_images():
    from _helpers import TINY_CONV, make_images
    from anndata import AnnData

    x, y = make_images(shape=(1, 8, 8))
    a = AnnData((x.reshape(len(x), -1) / 255).astype(np.float32))
    a.uns["image_shape"] = [1, 8, 8]
    scg.tl.clustergan(a, 3, max_iter=5, batch_size=16, n_latent=3)  # preprocess=True: no effect
    assert a.uns["clustergan"]["params"]["architecture"] == "mnist"
    assert a.uns["clustergan"]["params"]["image_shape"] == [1, 8, 8]
    assert a.obsm["X_clustergan"].shape == (len(x), 3)
    # an MLP on flattened pixels; generate still returns images
    m = scg.model.GANEnsemble(3, architecture="mlp", max_iter=5, batch_size=16).fit(a)
    assert isinstance(m.generator, scg.nn.MLPGenerator)
    assert m.generate(2).shape == (2, 1, 8, 8)
    # a conv entry named explicitly reads 2-D data of its own size as images
    flat = np.random.default_rng(0).random((20, 784)).astype(np.float32)
    m = scg.model.GANEnsemble(
        3, architecture="mnist", architecture_options=TINY_CONV, max_iter=2, batch_size=8
    ).fit(flat)
    assert m.image_shape == (1, 28, 28)
    with pytest.raises(ValueError, match="takes images of shape"):
        scg.model.GANEnsemble(3, architecture="mnist", max_iter=2).fit(flat[:, :100])


def test_fit_tensor_vectors_and_images():
    from _helpers import TINY_CONV, make_images

    x, y = make_images(shape=(1, 8, 8))
    m = scg.fit_tensor(
        torch.from_numpy(x), 3, labels=y, architecture_options=TINY_CONV, max_iter=5, batch_size=16
    )
    assert m.architecture == "mnist"
    assert set(m.scores_) == {"acc", "purity", "nmi", "ari"}
    assert 0 <= m.scores_["acc"] <= 1
    v = np.random.default_rng(0).random((40, 16)).astype(np.float32)
    m = scg.fit_tensor(v, 4, architecture="pendigits", max_iter=3, batch_size=8)
    assert (m.architecture, m.n_latent, m.scores_) == ("pendigits", 5, None)
    assert isinstance(m.generator.trunk[1], torch.nn.BatchNorm1d)
    with pytest.raises(ValueError, match="one entry per sample"):
        scg.fit_tensor(v, 4, labels=np.zeros(3), max_iter=3, batch_size=8)


# ---------------------------------------------------------------- vectorized ensembles (n_runs)
@pytest.fixture(scope="module")
def ensemble():
    a = make_counts()
    return scg.model.GANEnsemble(3, n_latent=5, n_runs=3, **FAST).fit(a, n_top_genes=30), a


def test_ensemble_fit_outputs(ensemble):
    model, a = ensemble
    assert model.labels_runs_.shape == (a.n_obs, 3)
    assert model.labels_runs_.dtype == np.int64
    assert len(model.replicas) == 3
    assert [r.random_state for r in model.replicas] == [0, 1, 2]
    best = model.selected_run_
    assert best == int(np.argmax(model.selection_scores_))
    np.testing.assert_allclose(model.selection_scores_, agreement(model.labels_runs_))
    # default combine="consensus": the matched majority vote of the replicas, with its share
    labels, confidence, maps, _ = consensus(model.labels_runs_, 3)
    np.testing.assert_array_equal(model.labels_, labels)
    np.testing.assert_allclose(model.confidence_, confidence)
    np.testing.assert_array_equal(model.run_maps_, maps)
    assert set(np.unique(model.confidence_)) <= {1 / 3, 2 / 3, 1.0}
    # new cells get the same vote: on the training cells that is the consensus itself
    np.testing.assert_array_equal(model.predict(a), labels)
    np.testing.assert_array_equal(model.latent_, model.replicas[best].latent_)
    for r, rep in enumerate(model.replicas):
        np.testing.assert_array_equal(rep.labels_, model.labels_runs_[:, r])
        assert rep.history_["iteration"][-1] == 40
        assert rep.n_runs == 1
    # replicas are distinct models
    assert not np.allclose(model.replicas[0].latent_, model.replicas[1].latent_)


def test_ensemble_consensus_predict_with_the_other_assign_matches_replicas_afresh(ensemble):
    model, a = ensemble
    runs = np.stack([rep.predict(a, assign="argmax") for rep in model.replicas], axis=1)
    expected = consensus(runs, 3)[0]
    got = model.predict(a, assign="argmax")
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.int64
    assert set(np.unique(got)) <= {0, 1, 2}


def test_ensemble_combine_select_takes_the_medoid_replica(ensemble):
    model, a = ensemble
    sel = scg.model.GANEnsemble(3, n_latent=5, n_runs=3, combine="select", **FAST).fit(
        a, n_top_genes=30
    )
    best = sel.selected_run_
    assert best == model.selected_run_
    np.testing.assert_array_equal(sel.labels_, sel.replicas[best].labels_)
    np.testing.assert_array_equal(sel.predict(a), sel.replicas[best].predict(a))
    # the chosen replica agrees with itself, so each cell has at least 1 / R
    assert sel.confidence_.min() >= 1 / 3 - 1e-12


def test_ensemble_replica_follows_the_single_run_with_its_seed(ensemble):
    model, a = ensemble
    single = scg.model.GANEnsemble(3, n_latent=5, random_state=1, **FAST).fit(a, n_top_genes=30)
    # exact equality of a few steps is tested in float64 (tests/test_train.py); in float32 the
    # batched and single products round differently and 40 GAN steps amplify that (to ~1e-3 on
    # some weights with the hand-written gradients), so here: replica 1 is the seed-1 run up to
    # that, and far closer to it than replica 0 (seed 0) is
    for p, q, o in zip(
        single.encoder.parameters(),
        model.replicas[1].encoder.parameters(),
        model.replicas[0].encoder.parameters(),
        strict=True,
    ):
        p, q, o = p.detach(), q.detach(), o.detach()
        torch.testing.assert_close(p, q, rtol=0, atol=5e-3)
        if p.dim() == 2:  # weights (biases start at zero for every seed)
            assert float((p - q).abs().max()) < 0.1 * float((p - o).abs().max())


def test_ensemble_save_load_roundtrip(ensemble, tmp_path):
    model, a = ensemble
    model.save(tmp_path / "ens")
    loaded = scg.model.GANEnsemble.load(tmp_path / "ens")
    assert loaded.n_runs == 3
    assert loaded.selected_run_ == model.selected_run_
    assert loaded.combine == "consensus"
    np.testing.assert_allclose(loaded.selection_scores_, model.selection_scores_)
    np.testing.assert_array_equal(loaded.run_maps_, model.run_maps_)
    np.testing.assert_array_equal(loaded.predict(a), model.predict(a))
    for r1, r2 in zip(loaded.replicas, model.replicas, strict=True):
        np.testing.assert_array_equal(r1.predict(a), r2.predict(a))
        assert r1.history_ == r2.history_
        assert r1.random_state == r2.random_state


def test_critic_without_batch_norm_trains_saves_and_loads_back(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (60, 16)).astype(np.float32)
    opts = {"critic_batch_norm": False}
    model = scg.model.GANEnsemble(
        3,
        architecture="pendigits",
        architecture_options=opts,
        n_runs=2,
        max_iter=3,
        batch_size=8,
        random_state=0,
    ).fit(x, preprocess=False)
    for rep in model.replicas:
        assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in rep.critic.modules())
        assert any(isinstance(m, torch.nn.BatchNorm1d) for m in rep.generator.modules())
    model.save(tmp_path / "m")
    loaded = scg.model.GANEnsemble.load(tmp_path / "m")
    assert loaded.architecture_options["critic_batch_norm"] is False
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for rep in loaded.replicas:
        assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in rep.critic.modules())


@pytest.mark.parametrize(("value", "exc"), [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_n_runs_validation(value, exc):
    with pytest.raises(exc, match="n_runs"):
        scg.model.GANEnsemble(3, n_runs=value)


def test_n_runs_needs_an_ensemble_capable_architecture(monkeypatch):
    from scgan_cluster import nn as snn

    def build(n_features, n_latent, n_clusters):
        lin = torch.nn.Linear(n_features, 1)
        return lin, lin, lin

    training = dict(snn.ARCHITECTURES["mlp"].training_defaults)
    monkeypatch.setitem(
        snn.ARCHITECTURES, "plain", snn.Architecture(build=build, defaults=training)
    )
    with pytest.raises(ValueError, match="n_runs > 1 is not available for architecture 'plain'"):
        scg.model.GANEnsemble(3, architecture="plain", n_runs=2, **FAST).fit(
            make_counts(), n_top_genes=30
        )


# ---------------------------------------------------------------- learned prior
def test_learned_prior_moves_towards_the_encoders_proportions():
    a = make_counts()
    model = scg.model.GANEnsemble(3, n_latent=5, prior="learned", max_iter=400, batch_size=32)
    model.fit(a, n_top_genes=30)
    assert model.params["prior"] == "learned"
    w = model.prior.weights
    assert w.shape == (3,)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    assert float(w.min()) >= 0.1 / 3 - 1e-6
    assert not torch.allclose(w, torch.full((3,), 1 / 3))  # updated at iteration 128
    uniform = scg.model.GANEnsemble(3, n_latent=5, max_iter=40, batch_size=32).fit(
        a, n_top_genes=30
    )
    torch.testing.assert_close(uniform.prior.weights, torch.full((3,), 1 / 3))


def test_prior_floor_bounds_the_learned_proportions(tmp_path):
    a = make_counts()
    kw = {"n_latent": 5, "prior": "learned", "max_iter": 400, "batch_size": 32}
    low = scg.model.GANEnsemble(3, **kw).fit(a, n_top_genes=30)  # floor 0.1 / K
    assert low.params["prior_floor"] == 0.1
    # the toy's proportions stay near 1/3, so only a floor near 1 binds
    model = scg.model.GANEnsemble(3, prior_floor=1.0, **kw).fit(a, n_top_genes=30)
    assert model.params["prior_floor"] == 1.0
    w = model.prior.weights
    assert float(low.prior.weights.min()) < 0.31  # unfloored, one mode fell below 1/3
    assert float(w.min()) > float(low.prior.weights.min())
    model.save(tmp_path / "m")
    loaded = scg.model.GANEnsemble.load(tmp_path / "m")
    assert loaded.params["prior_floor"] == 1.0
    torch.testing.assert_close(loaded.prior.weights, w)


def test_learned_prior_per_replica_roundtrip(tmp_path):
    a = make_counts()
    model = scg.model.GANEnsemble(
        3, n_latent=5, prior="learned", n_runs=2, max_iter=400, batch_size=32
    ).fit(a, n_top_genes=30)
    w0, w1 = (rep.prior.weights for rep in model.replicas)
    assert w0.shape == w1.shape == (3,)
    assert not torch.allclose(w0, w1)
    model.save(tmp_path / "m")
    loaded = scg.model.GANEnsemble.load(tmp_path / "m")
    for r1, r2 in zip(loaded.replicas, model.replicas, strict=True):
        torch.testing.assert_close(r1.prior.weights, r2.prior.weights)
    np.testing.assert_array_equal(loaded.predict(a), model.predict(a))


# ---------------------------------------------------------------- flavor="lognorm"
def test_lognorm_flavor_fit_predict_and_roundtrip(tmp_path):
    a = make_counts()
    model = scg.model.GANEnsemble(3, n_latent=5, **FAST).fit(a, n_top_genes=30, flavor="lognorm")
    assert model.transform["flavor"] == "lognorm"
    prepared = scg.pp.preprocess(
        a, genes=model.var_names, scale=model.scale, flavor="lognorm", copy=True
    )
    np.testing.assert_allclose(
        model.get_latent_representation(a), model.get_latent_representation(prepared), atol=1e-5
    )
    np.testing.assert_array_equal(model.predict(a), model.labels_)
    # new cells are normalised by their own totals: three times the depth, the same labels
    deep = a.copy()
    deep.X = deep.X * 3
    np.testing.assert_array_equal(model.predict(deep), model.labels_)
    with pytest.raises(ValueError, match="needs every gene"):
        model.predict(a[:, model.var_names].X)
    paper_prepared = scg.pp.preprocess(a, 30, subset=False, copy=True)
    with pytest.raises(ValueError, match="flavor 'paper'"):
        model.predict(paper_prepared)
    model.save(tmp_path / "m")
    loaded = scg.model.GANEnsemble.load(tmp_path / "m")
    assert loaded.transform["flavor"] == "lognorm"
    np.testing.assert_array_equal(loaded.predict(a), model.labels_)


def test_precision_option_is_checked_and_recorded():
    with pytest.raises(ValueError, match="precision must be one of"):
        scg.model.GANEnsemble(3, precision="fp16")
    assert scg.model.GANEnsemble(3, precision="bf16").params["precision"] == "bf16"
    assert scg.model.GANEnsemble(3).params["precision"] == "fp32"
    assert scg.model.GANEnsemble(3).params["compile"] is False
    assert scg.model.GANEnsemble(3, compile=True).params["compile"] is True
    with pytest.raises(TypeError, match="compile must be True or False"):
        scg.model.GANEnsemble(3, compile="yes")


def test_bf16_image_model_trains_with_float32_weights():
    from _helpers import TINY_CONV, make_images

    x, _ = make_images(shape=(1, 8, 8))
    m = scg.model.GANEnsemble(
        3,
        architecture_options=TINY_CONV,
        max_iter=4,
        batch_size=16,
        n_latent=4,
        precision="bf16",
        random_state=0,
    ).fit(x)
    assert isinstance(m.critic, scg.nn.ConvCritic)  # the autograd path, under bf16 autocast
    assert all(p.dtype == torch.float32 for p in m.critic.parameters())
    assert np.isfinite(m.history_["critic_loss"]).all()
    assert m.latent_.dtype == np.float32
    assert set(np.unique(m.labels_)) <= {0, 1, 2}


def test_predict_reorders_genes_by_name_without_preprocessing():
    a = make_counts()
    x = np.log1p(a.X) / np.log1p(a.X).max()
    b = a.copy()
    b.X = x
    model = scg.model.GANEnsemble(3, n_latent=5, **FAST).fit(b, preprocess=False)
    shuffled = b[:, b.var_names[::-1]].copy()  # same genes, reversed order
    np.testing.assert_allclose(
        model.get_latent_representation(shuffled), model.get_latent_representation(b), atol=1e-6
    )


def test_leiden_assign_labels_centres_predict_and_reload(tmp_path):
    a = make_counts()
    model = scg.model.GANEnsemble(3, n_latent=5, assign="leiden", **FAST).fit(a, n_top_genes=30)
    found = leiden_latent_k(model.latent_, 3, 0)
    assert set(found) == {0, 1, 2}
    # centres: each leiden cluster's mean zn; every cell, training cells included, goes to the
    # nearest one (the rule of predict), which keeps almost all of leiden's partition
    assert model.cluster_centers_.shape == (3, 5)
    for c in range(3):
        np.testing.assert_allclose(
            model.cluster_centers_[c], model.latent_[found == c].mean(0), rtol=1e-5
        )
    d = ((model.latent_[:, None, :] - model.cluster_centers_[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(model.labels_, d.argmin(1))
    assert (model.labels_ == found).mean() > 0.9
    np.testing.assert_array_equal(model.predict(a), model.labels_)
    np.testing.assert_array_equal(model.predict(a, assign="argmax"), model.proba_.argmax(1))
    with pytest.raises(ValueError, match="no centres for assign='kmeans'"):
        model.predict(a, assign="kmeans")
    model.save(tmp_path / "m")
    loaded = scg.model.GANEnsemble.load(tmp_path / "m")
    assert loaded.assign == "leiden"
    np.testing.assert_array_equal(loaded.predict(a), model.predict(a))


def test_leiden_assign_in_an_ensemble_enters_the_consensus():
    a = make_counts()
    model = scg.model.GANEnsemble(3, n_latent=5, n_runs=2, assign="leiden", **FAST).fit(
        a, n_top_genes=30
    )
    for r, rep in enumerate(model.replicas):
        np.testing.assert_array_equal(model.labels_runs_[:, r], rep.labels_)
        d = ((rep.latent_[:, None, :] - rep.cluster_centers_[None]) ** 2).sum(-1)
        np.testing.assert_array_equal(rep.labels_, d.argmin(1))
    np.testing.assert_array_equal(model.labels_, consensus(model.labels_runs_, 3)[0])


def _reloads_and_reads_an_old_save_as(model, data, path, key, default):
    """``model`` saves and loads back; a save without ``params[key]`` loads with ``default``."""
    model.save(path)
    loaded = scg.model.GANEnsemble.load(path, device="cpu")
    assert loaded.params == model.params
    np.testing.assert_array_equal(loaded.predict(data), model.predict(data))
    config_path = path / "config.json"
    config = json.loads(config_path.read_text())
    del config["params"][key]  # a model saved before the option existed
    config_path.write_text(json.dumps(config))
    assert scg.model.GANEnsemble.load(path, device="cpu").params[key] == default
    return loaded


def test_beta_r_is_checked_recorded_saved_and_changes_the_fit(tmp_path):
    assert scg.model.GANEnsemble(3).params["beta_r"] == 0.0
    with pytest.raises(ValueError, match="beta_r must be a finite number >= 0"):
        scg.model.GANEnsemble(3, beta_r=-1.0)
    a = make_counts()
    fits = {
        beta_r: scg.model.GANEnsemble(3, n_latent=5, n_runs=2, beta_r=beta_r, **FAST).fit(
            a, n_top_genes=30
        )
        for beta_r in (0.0, 1.0)
    }
    model = fits[1.0]
    assert model.params["beta_r"] == 1.0
    assert model.train_config.beta_r == 1.0
    assert not np.allclose(model.latent_, fits[0.0].latent_)
    # an old save loads with the paper's objective
    _reloads_and_reads_an_old_save_as(model, a, tmp_path / "m", "beta_r", 0.0)


def test_lr_final_is_checked_recorded_saved_and_changes_the_fit(tmp_path):
    assert scg.model.GANEnsemble(3).params["lr_final"] is None
    with pytest.raises(ValueError, match="lr_final must be a finite number > 0"):
        scg.model.GANEnsemble(3, lr_final=-1.0)
    a = make_counts()
    fits = {
        lr_final: scg.model.GANEnsemble(3, n_latent=5, n_runs=2, lr_final=lr_final, **FAST).fit(
            a, n_top_genes=30
        )
        for lr_final in (None, 1e-5)
    }
    model = fits[1e-5]
    assert model.params["lr_final"] == 1e-5
    assert not np.allclose(model.latent_, fits[None].latent_)
    # an old save loads with the paper's constant rate
    _reloads_and_reads_an_old_save_as(model, a, tmp_path / "m", "lr_final", None)


def test_prior_update_every_is_checked_used_saved_and_loaded(tmp_path, monkeypatch):
    from scgan_cluster.train import _loop

    assert scg.model.GANEnsemble(3).params["prior_update_every"] == 500
    with pytest.raises(ValueError, match="prior_update_every"):
        scg.model.GANEnsemble(3, prior_update_every=0)
    calls = []
    update = _loop.update_prior_weights

    def counted(*args, **kwargs):
        calls.append(1)
        return update(*args, **kwargs)

    monkeypatch.setattr(_loop, "update_prior_weights", counted)
    a = make_counts()
    kw = {"n_latent": 5, "prior": "learned", "max_iter": 100, "batch_size": 32}
    fits, counts = {}, {}
    for every in (500, 32):
        calls.clear()
        fits[every] = scg.model.GANEnsemble(3, prior_update_every=every, **kw).fit(
            a, n_top_genes=30
        )
        counts[every] = len(calls)
    model = fits[32]
    assert model.train_config.prior_update_every == 32
    # re-estimates from iteration 25 on, checked between blocks of 32 draws: at iteration 32
    # only with the default, at 32, 64 and 96 here
    assert counts == {500: 1, 32: 3}
    assert not torch.allclose(model.prior.weights, fits[500].prior.weights)
    loaded = _reloads_and_reads_an_old_save_as(model, a, tmp_path / "m", "prior_update_every", 500)
    torch.testing.assert_close(loaded.prior.weights, model.prior.weights.cpu())


def test_n_pcs_networks_see_principal_components(tmp_path):
    a = make_counts()
    model = scg.model.GANEnsemble(3, n_latent=5, n_pcs=4, lr=2e-3, max_iter=400, batch_size=32)
    model.fit(a, n_top_genes=30, flavor="lognorm")
    assert model.params["n_pcs"] == 4
    assert model.projection.n_pcs == 4
    assert model.projection.n_features == 30
    assert model.encoder.trunk[0].in_features == 4
    assert model.generator.out.out_features == 4
    # the three marker blocks are found through the components
    truth = a.obs["truth"].cat.codes.to_numpy()
    assert scg.metrics.cluster_metrics(truth, model.labels_)["ari"] > 0.9
    np.testing.assert_array_equal(model.predict(a), model.labels_)
    # generated cells come back as genes, on the preprocessed scale
    x = model.generate(50, random_state=0)
    assert x.shape == (50, 30)
    np.testing.assert_allclose(
        model.projection.transform(x),
        model.projection.transform(
            model.projection.inverse_transform(model.projection.transform(x))
        ),
        atol=1e-5,
    )
    model.save(tmp_path / "m")
    loaded = scg.model.GANEnsemble.load(tmp_path / "m")
    assert loaded.n_pcs == 4
    np.testing.assert_array_equal(loaded.projection.components, model.projection.components)
    np.testing.assert_array_equal(loaded.predict(a), model.labels_)
    np.testing.assert_allclose(
        loaded.get_latent_representation(a), model.get_latent_representation(a), atol=1e-6
    )
    np.testing.assert_allclose(
        loaded.generate(5, random_state=1), model.generate(5, random_state=1)
    )


def test_n_pcs_ensemble_shares_one_projection_and_reloads(tmp_path):
    a = make_counts()
    model = scg.model.GANEnsemble(3, n_latent=5, n_pcs=3, n_runs=2, **FAST).fit(a, n_top_genes=30)
    assert all(rep.projection is model.projection for rep in model.replicas)
    assert all(rep.encoder.trunk[0].in_features == 3 for rep in model.replicas)
    model.save(tmp_path / "m")
    loaded = scg.model.GANEnsemble.load(tmp_path / "m")
    assert all(rep.projection is loaded.projection for rep in loaded.replicas)
    np.testing.assert_array_equal(loaded.predict(a), model.predict(a))


def test_n_pcs_errors_leave_the_model_as_it_was():
    a = make_counts()
    model = scg.model.GANEnsemble(3, n_latent=5, n_pcs=40, **FAST)
    with pytest.raises(ValueError, match="pass a smaller n_pcs"):
        model.fit(a, n_top_genes=30)
    assert not model.is_trained
    assert model.projection is None
    images = np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="n_pcs applies to vectors"):
        scg.model.GANEnsemble(3, n_pcs=4, **FAST).fit(images)
    for bad in (-2, 1.5, True):
        with pytest.raises((TypeError, ValueError), match="n_pcs"):
            scg.model.GANEnsemble(3, n_pcs=bad)
    # 0 means no PCA, as in scanpy (and as tl.clustergan)
    assert scg.model.GANEnsemble(3, n_pcs=0).n_pcs is None
