import matplotlib.pyplot as plt
import numpy as np
import pytest
from _helpers import TINY_CONV, make_counts, make_images

import scgan_cluster as scg


@pytest.fixture(scope="module")
def image_model():
    x, _ = make_images(shape=(1, 8, 8))
    return scg.model.GANEnsemble(
        3, architecture_options=TINY_CONV, max_iter=3, batch_size=16, n_latent=3
    ).fit(x)


@pytest.fixture(scope="module")
def vector_model():
    return scg.model.GANEnsemble(3, n_latent=3, max_iter=3, batch_size=32).fit(
        make_counts(), n_top_genes=20
    )


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_cluster_samples_images(image_model, tmp_path):
    axes = scg.pl.cluster_samples(image_model, n_samples=4, show=False)
    assert axes.shape == (3, 4)
    shown = axes[1, 2].images[0].get_array()
    assert shown.shape == (8, 8)
    # row k, column j is G(zn_j, e_k) with the same zn_j in every row
    expected = image_model.decode(
        np.hstack([scg.pl._grid.draw_zn(image_model, 4, 0), np.tile(np.eye(3)[1], (4, 1))])
    )
    np.testing.assert_allclose(shown, expected[2, 0], rtol=1e-5)
    assert axes[2, 0].get_ylabel() == "zc=2"
    axes = scg.pl.cluster_samples(image_model, n_samples=2, clusters=[2, 0], show=False)
    assert axes.shape == (2, 2)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["zc=2", "zc=0"]
    out = tmp_path / "modes.png"
    assert scg.pl.cluster_samples(image_model, n_samples=3, save=out, show=False) is not None
    assert out.stat().st_size > 0


def test_cluster_samples_vectors(vector_model):
    axes = scg.pl.cluster_samples(vector_model, n_samples=5, show=False)
    assert axes.shape == (3,)
    assert axes[0].images[0].get_array().shape == (5, 20)


def test_interpolation_images(image_model, tmp_path):
    axes = scg.pl.interpolation(image_model, n_steps=5, show=False)
    assert axes.shape == (2, 5)  # default pairs (0, 1), (1, 2)
    assert axes[0, 0].get_ylabel() == "0→1"
    # the ends of a row are the pure modes with the row's zn
    zn = scg.pl._grid.draw_zn(image_model, 2, 0)[0]
    eye = np.eye(3, dtype=np.float32)
    ends = image_model.decode(np.vstack([np.hstack([zn, eye[0]]), np.hstack([zn, eye[1]])]))
    np.testing.assert_allclose(axes[0, 0].images[0].get_array(), ends[0, 0], rtol=1e-5)
    np.testing.assert_allclose(axes[0, 4].images[0].get_array(), ends[1, 0], rtol=1e-5)
    axes = scg.pl.interpolation(image_model, pairs=[(2, 0)], n_steps=3, show=False)
    assert axes.shape == (1, 3)
    out = tmp_path / "interp.pdf"
    scg.pl.interpolation(image_model, n_steps=3, save=out, show=False)
    assert out.stat().st_size > 0


def test_interpolation_vectors(vector_model):
    axes = scg.pl.interpolation(vector_model, pairs=[(0, 2), (1, 0), (2, 1)], n_steps=4, show=False)
    assert axes.shape == (3,)
    assert axes[1].images[0].get_array().shape == (4, 20)


def test_generated_plots_errors(image_model):
    with pytest.raises(TypeError, match="ClusterGAN"):
        scg.pl.cluster_samples("model", show=False)
    with pytest.raises(ValueError, match="not trained"):
        scg.pl.interpolation(scg.ClusterGAN(3), show=False)
    with pytest.raises(ValueError, match="not trained"):
        scg.pl.interpolation(scg.model.GANEnsemble(3), show=False)
    with pytest.raises(ValueError, match="clusters must hold"):
        scg.pl.cluster_samples(image_model, clusters=[5], show=False)
    with pytest.raises(ValueError, match="pairs must hold"):
        scg.pl.interpolation(image_model, pairs=[(0, 3)], show=False)
    with pytest.raises(ValueError, match="n_steps"):
        scg.pl.interpolation(image_model, n_steps=1, show=False)


def test_the_user_model_draws_from_its_leading_replica():
    model = scg.ClusterGAN(
        3, ensembles=["genes"], n_runs=2, n_latent=3, max_iter=3, batch_size=32, n_top_genes=20
    ).fit(make_counts())
    axes = scg.pl.cluster_samples(model, n_samples=4, show=False)
    assert len(axes) == 3
    assert axes[0].images[0].get_array().shape == (4, 20)
    ax = scg.pl.training_history(model, show=False)
    assert ax is not None
