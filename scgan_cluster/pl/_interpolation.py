"""Interpolation between two modes of the prior with zn fixed (section 2.7, Figure 6 of the paper)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scgan_cluster._docs import doc_params

from ._grid import check_model, draw_zn, finish, show_image

__all__ = ["interpolation"]


def _check_pairs(model, pairs) -> list[tuple[int, int]]:
    k = model.n_clusters
    if pairs is None:
        return [(i, i + 1) for i in range(k - 1)]
    out = []
    for pair in pairs:
        if len(pair) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < k
            for v in pair
        ):
            raise ValueError(f"pairs must hold (i, j) with integers in [0, {k - 1}], got {pair!r}.")
        out.append((int(pair[0]), int(pair[1])))
    if not out:
        raise ValueError("pairs is empty.")
    return out


@doc_params
def interpolation(
    model,
    *,
    pairs: Sequence[tuple[int, int]] | None = None,
    n_steps: int = 10,
    random_state: int = 0,
    cmap: str = "gray",
    save: str | Path | None = None,
    show: bool | None = None,
):
    """Generated samples along the segment between two one-hot codes, zn held fixed.

    For a pair ``(i, j)`` the row shows ``G(zn, mu e_i + (1 - mu) e_j)`` for ``mu`` from 1 (mode
    ``i``, left) to 0 (mode ``j``, right) in ``n_steps`` equal steps, with one zn ~ N(0, sigma^2 I)
    per row: the paper's interpolation across classes (section 2.7, Figure 6). Images are shown
    one per axis; vectors as one heatmap per pair (rows: steps, columns: features).

    Parameters
    ----------
    model
        A trained :class:`scgan_cluster.model.GANEnsemble`, or a trained
        :class:`scgan_cluster.ClusterGAN` (its replica with the largest pool weight).
    pairs
        The ``(i, j)`` mode pairs, one row each (default: ``(0, 1), (1, 2), ..., (K-2, K-1)``).
    n_steps
        Points along each segment, ends included (at least 2).
    random_state
        Seed of the zn draws.
    cmap
        Colour map of grey images and of the heatmaps.
    {doc_save_show}

    Returns
    -------
    The matplotlib axes (when the figure is not shown): for images an array
    ``(len(pairs), n_steps)``; for vectors an array ``(len(pairs),)``. ``None`` when shown.
    """
    import matplotlib.pyplot as plt

    model = check_model(model)
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 2:
        raise ValueError(f"n_steps must be an integer >= 2, got {n_steps!r}.")
    pairs = _check_pairs(model, pairs)
    mu = np.linspace(1.0, 0.0, n_steps, dtype=np.float32)[:, None]
    eye = np.eye(model.n_clusters, dtype=np.float32)
    zn = draw_zn(model, len(pairs), random_state)
    rows = []
    for r, (i, j) in enumerate(pairs):
        zc = mu * eye[i] + (1 - mu) * eye[j]
        rows.append(model.decode(np.hstack([np.tile(zn[r], (n_steps, 1)), zc])))
    labels = [f"{i}→{j}" for i, j in pairs]
    if model.image_shape is not None:
        fig, axes = plt.subplots(
            len(pairs), n_steps, figsize=(0.9 * n_steps, 0.9 * len(pairs)), squeeze=False
        )
        for r, images in enumerate(rows):
            for c in range(n_steps):
                show_image(axes[r, c], images[c], cmap)
            axes[r, 0].set_ylabel(labels[r], rotation=0, ha="right", va="center", fontsize=8)
        for c in range(n_steps):
            axes[0, c].set_title(f"{float(mu[c, 0]):.2g}", fontsize=7)
        fig.subplots_adjust(wspace=0.05, hspace=0.05)
        return finish(fig, axes, save, show)
    lo = min(float(x.min()) for x in rows)
    hi = max(float(x.max()) for x in rows)
    fig, axes = plt.subplots(len(pairs), 1, figsize=(6, 0.9 * len(pairs) + 0.6), squeeze=False)
    axes = axes[:, 0]
    for ax, label, x in zip(axes, labels, rows, strict=True):
        im = ax.imshow(x, aspect="auto", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_yticks([0, n_steps - 1], ["mu=1", "mu=0"], fontsize=6)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    axes[-1].set_xlabel("feature")
    fig.colorbar(im, ax=list(axes), fraction=0.03)
    return finish(fig, axes, save, show)
