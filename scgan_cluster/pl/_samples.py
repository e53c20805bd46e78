"""Samples generated from each mode zc of a trained ClusterGAN (the paper's Figures 4, 5 and 8)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scgan_cluster._docs import doc_params
from scgan_cluster._validation import check_positive_int

from ._grid import check_model, draw_zn, finish, show_image

__all__ = ["cluster_samples"]


def _check_clusters(model, clusters: Sequence[int] | None) -> list[int]:
    if clusters is None:
        return list(range(model.n_clusters))
    out = []
    for k in clusters:
        if (
            isinstance(k, bool)
            or not isinstance(k, (int, np.integer))
            or not 0 <= k < model.n_clusters
        ):
            raise ValueError(
                f"clusters must hold integers in [0, {model.n_clusters - 1}], got {k!r}."
            )
        out.append(int(k))
    if not out:
        raise ValueError("clusters is empty.")
    return out


@doc_params
def cluster_samples(
    model,
    *,
    n_samples: int = 10,
    clusters: Sequence[int] | None = None,
    random_state: int = 0,
    cmap: str = "gray",
    save: str | Path | None = None,
    show: bool | None = None,
):
    """Grid of generated samples, one row per mode zc of the prior.

    Row ``k`` holds ``G(zn_j, e_k)`` for ``j = 1..n_samples``; column ``j`` uses the same zn in
    every row, so rows differ only by the one-hot code (the paper's figures of the modes of MNIST,
    Fashion-MNIST and COIL). For a model trained on images each sample is an image; for vectors
    each row is a heatmap of its ``n_samples`` generated vectors (features along x), on one
    colour scale.

    Parameters
    ----------
    model
        A trained :class:`scgan_cluster.model.GANEnsemble`, or a trained
        :class:`scgan_cluster.ClusterGAN` (its replica with the largest pool weight).
    n_samples
        Samples per mode.
    clusters
        The modes to show, in order (default: all ``n_clusters``).
    random_state
        Seed of the zn draws.
    cmap
        Colour map of grey images and of the heatmaps.
    {doc_save_show}

    Returns
    -------
    The matplotlib axes (when the figure is not shown): for images an array
    ``(len(clusters), n_samples)``, one axis per sample; for vectors an array
    ``(len(clusters),)``, one heatmap per mode. ``None`` when shown.
    """
    import matplotlib.pyplot as plt

    model = check_model(model)
    check_positive_int(n_samples, "n_samples")
    ks = _check_clusters(model, clusters)
    zn = draw_zn(model, n_samples, random_state)
    eye = np.eye(model.n_clusters, dtype=np.float32)
    rows = [model.decode(np.hstack([zn, np.tile(eye[k], (n_samples, 1))])) for k in ks]
    if model.image_shape is not None:
        fig, axes = plt.subplots(
            len(ks), n_samples, figsize=(0.9 * n_samples, 0.9 * len(ks)), squeeze=False
        )
        for r, (k, images) in enumerate(zip(ks, rows, strict=True)):
            for c in range(n_samples):
                show_image(axes[r, c], images[c], cmap)
            axes[r, 0].set_ylabel(f"zc={k}", rotation=0, ha="right", va="center", fontsize=8)
        fig.subplots_adjust(wspace=0.05, hspace=0.05)
        return finish(fig, axes, save, show)
    lo = min(float(x.min()) for x in rows)
    hi = max(float(x.max()) for x in rows)
    fig, axes = plt.subplots(
        len(ks), 1, figsize=(6, 0.35 * n_samples * len(ks) / 3 + 0.6), squeeze=False, sharex=True
    )
    axes = axes[:, 0]
    for ax, k, x in zip(axes, ks, rows, strict=True):
        im = ax.imshow(x, aspect="auto", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_yticks([])
        ax.set_ylabel(f"zc={k}", rotation=0, ha="right", va="center", fontsize=8)
    axes[-1].set_xlabel("feature")
    fig.colorbar(im, ax=list(axes), fraction=0.03)
    return finish(fig, axes, save, show)
