"""Helpers shared by the plots of generated data: drawing one sample, finishing a figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def check_model(model):
    """The trained network to draw from: a GANEnsemble, or a ClusterGAN's leading replica."""
    from scgan_cluster.model import ClusterGAN, GANEnsemble

    if isinstance(model, ClusterGAN):
        if not model.is_trained:
            raise ValueError("The model is not trained: call fit() or ClusterGAN.load() first.")
        return model._leading()
    if not isinstance(model, GANEnsemble):
        raise TypeError(
            "Expected a trained scgan_cluster.ClusterGAN or scgan_cluster.model.GANEnsemble, "
            f"got {type(model).__name__}."
        )
    if not model.is_trained:
        raise ValueError("The model is not trained: call fit() or load() first.")
    return model


def draw_zn(model, n: int, random_state: int) -> np.ndarray:
    """``n`` draws of zn ~ N(0, sigma^2 I) from a local generator."""
    rng = np.random.default_rng(random_state)
    return (rng.standard_normal((n, model.n_latent)) * model.sigma).astype(np.float32)


def show_image(ax, image: np.ndarray, cmap: str) -> None:
    """One (C, H, W) image in [0, 1] on a bare axis."""
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(np.moveaxis(image[:3], 0, -1), 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def finish(
    fig, axes, save: str | Path | None, show: bool | None, *, bbox_inches: str | None = "tight"
):
    """Save and/or show, scanpy style: return the axes unless the figure was shown."""
    import matplotlib.pyplot as plt

    if save is not None:
        fig.savefig(save, dpi=120, bbox_inches=bbox_inches)
    if show or (show is None and save is None):
        plt.show()
        return None
    if save is not None:
        plt.close(fig)
    return axes
