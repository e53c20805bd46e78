"""GPU checks: run with ``python -m pytest -m gpu`` on a machine with CUDA."""

import numpy as np
import pytest
import torch
from _helpers import ON_CUDA, make_counts

import scgan_cluster as scg

pytestmark = ON_CUDA


def test_auto_picks_cuda_and_training_runs_there():
    a = make_counts()
    model = scg.model.GANEnsemble(3, n_latent=5, max_iter=50, batch_size=32)
    assert model.device.type == "cuda"
    model.fit(a, n_top_genes=30)
    assert next(model.encoder.parameters()).device.type == "cuda"
    assert model.labels_.shape == (a.n_obs,)


def test_same_seed_same_labels_on_cuda():
    a = make_counts()
    runs = [
        scg.model.GANEnsemble(3, max_iter=50, batch_size=32, device="cuda").fit(a, n_top_genes=30)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0].labels_, runs[1].labels_)


def test_model_saved_on_cuda_loads_on_cpu(tmp_path):
    a = make_counts()
    model = scg.model.GANEnsemble(3, max_iter=20, batch_size=32, device="cuda").fit(
        a, n_top_genes=30
    )
    model.save(tmp_path)
    cpu = scg.model.GANEnsemble.load(tmp_path, device="cpu")
    np.testing.assert_allclose(
        cpu.get_latent_representation(a), model.get_latent_representation(a), atol=1e-4
    )


def test_image_model_trains_on_cuda_and_loads_on_cpu(tmp_path):
    from _helpers import make_images

    x, _ = make_images(n_per_cluster=40, shape=(1, 28, 28))
    model = scg.model.GANEnsemble(3, max_iter=20, device="cuda").fit(x)  # the paper's MNIST nets
    assert model.architecture == "mnist"
    assert next(model.generator.parameters()).device.type == "cuda"
    assert model.generate(4, cluster=1).shape == (4, 1, 28, 28)
    model.save(tmp_path)
    cpu = scg.model.GANEnsemble.load(tmp_path, device="cpu")
    np.testing.assert_allclose(
        cpu.get_latent_representation(x), model.get_latent_representation(x), atol=1e-3
    )


def test_the_default_recipe_on_cuda_saves_and_loads_on_cpu(tmp_path):
    a = make_counts()
    model = scg.ClusterGAN(
        3, max_iter=30, batch_size=32, n_latent=5, n_top_genes=30, device="cuda"
    ).fit(a)
    np.testing.assert_array_equal(model.predict(a), model.labels_)
    model.save(tmp_path / "m")
    cpu = scg.ClusterGAN.load(tmp_path / "m", device="cpu")
    assert (cpu.predict(a) == model.labels_).mean() > 0.95


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_an_interrupted_fit_on_cuda_resumes_to_the_same_model(tmp_path, cuda_graph):
    a = make_counts()
    settings = {
        "n_runs": 2,
        "max_iter": 80,
        "batch_size": 32,
        "device": "cuda",
        "cuda_graph": cuda_graph,
    }
    whole = scg.model.GANEnsemble(3, **settings).fit(a, n_top_genes=30)

    def stop(model, it):
        if it == 50:
            raise KeyboardInterrupt

    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        scg.model.GANEnsemble(3, **settings).fit(
            a, n_top_genes=30, callback=stop, checkpoint=path, checkpoint_every=32
        )
    assert torch.load(path, weights_only=True)["iteration"] == 32
    resumed = scg.model.GANEnsemble(3, **settings).fit(a, n_top_genes=30, checkpoint=path)
    np.testing.assert_array_equal(resumed.labels_runs_, whole.labels_runs_)
    for t1, t2 in zip(
        resumed.encoder.state_dict().values(), whole.encoder.state_dict().values(), strict=True
    ):
        assert torch.equal(t1, t2)


def test_sparse_counts_train_on_the_device_with_indices_there(monkeypatch):
    from scipy import sparse

    from scgan_cluster.adapters import DenseSource

    seen = []
    take = DenseSource.take

    def spy(self, idx):
        seen.append(idx.device.type)
        return take(self, idx)

    monkeypatch.setattr(DenseSource, "take", spy)
    a = make_counts()
    a.X = sparse.csr_matrix(a.X)
    scg.model.GANEnsemble(3, max_iter=40, batch_size=32, device="cuda").fit(a, n_top_genes=30)
    # every training iteration gathered its batch from a dense copy there, with indices there
    # (encoding the cells afterwards walks them in CPU-made ranges)
    assert seen.count("cuda") >= 40


@pytest.mark.parametrize(
    "settings",
    [
        {"n_runs": 1},
        {"n_runs": 3, "beta_r": 1.0},
        {"n_runs": 3, "precision": "bf16", "prior": "learned", "prior_update_every": 32},
    ],
)
def test_a_captured_iteration_equals_the_eager_one(settings):
    a = make_counts()
    common = {"max_iter": 96, "batch_size": 32, "n_latent": 5, "device": "cuda", **settings}
    eager = scg.model.GANEnsemble(3, **common).fit(a, n_top_genes=30)
    graphed = scg.model.GANEnsemble(3, cuda_graph=True, **common).fit(a, n_top_genes=30)
    for t1, t2 in zip(
        graphed.generator.state_dict().values(),
        eager.generator.state_dict().values(),
        strict=True,
    ):
        torch.testing.assert_close(t1, t2, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(graphed.labels_, eager.labels_)
    for key in ("wasserstein", "zc_loss"):
        np.testing.assert_allclose(graphed.history_[key], eager.history_[key], rtol=1e-4)


def test_the_loop_does_not_synchronise_per_iteration():
    import warnings

    a = make_counts()

    def syncs(max_iter: int) -> int:
        # 100 history records (the planned host reads) whatever max_iter
        model = scg.model.GANEnsemble(
            3, n_runs=2, max_iter=max_iter, batch_size=32, device="cuda", cuda_graph=True
        )
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model.fit(a, n_top_genes=30)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    # as many synchronisations for 200 as for 800 iterations: none per iteration or per block
    assert syncs(200) == syncs(800)


def test_concurrent_ensembles_on_cuda_give_the_sequential_fit():
    a = make_counts()
    kw = {"max_iter": 64, "batch_size": 32, "n_top_genes": 30, "device": "cuda"}
    one_by_one = scg.ClusterGAN(3, concurrent=False, cuda_graph=True, **kw).fit(a)
    together = scg.ClusterGAN(3, concurrent=True, cuda_graph=True, **kw).fit(a)
    np.testing.assert_array_equal(together.labels_runs_, one_by_one.labels_runs_)
    np.testing.assert_array_equal(together.labels_, one_by_one.labels_)


def test_minibatch_indices_are_drawn_on_the_gpu():
    from scgan_cluster.adapters import DenseSource
    from scgan_cluster.model._ensemble import _index_generator

    source = DenseSource(np.zeros((10, 3), dtype=np.float32), torch.device("cuda"))
    assert _index_generator(source, 0).device.type == "cuda"
