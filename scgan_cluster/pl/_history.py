"""Training curves of a ClusterGAN run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from anndata import AnnData

from scgan_cluster._docs import doc_params
from scgan_cluster.pl._grid import finish

__all__ = ["training_history"]

_PANELS = {
    "wasserstein": "Wasserstein estimate",
    "gradient_penalty": "gradient penalty",
    "generator_loss": "generator loss -E D(G(z))",
    "zn_loss": "zn cycle loss",
    "zc_loss": "zc cross-entropy",
    "critic_loss": "critic loss",
    "reconstruction_loss": "reconstruction error ||x - G(E(x))||^2",
}


@doc_params
def training_history(
    data,
    *,
    key: str = "clustergan",
    keys: Sequence[str] = ("wasserstein", "generator_loss", "zn_loss", "zc_loss"),
    save: str | Path | None = None,
    show: bool | None = None,
):
    """Plot the losses recorded while training.

    Parameters
    ----------
    data
        An AnnData that :func:`scgan_cluster.tl.clustergan` wrote into (read from
        ``uns[key]["history"]``), a trained :class:`scgan_cluster.ClusterGAN`, or a history dict.
    key
        ``key_added`` of the run, for AnnData input.
    keys
        Which curves to draw, one panel each (see ``uns[key]["history"]``).
    {doc_save_show}

    Returns
    -------
    The array of matplotlib axes (when ``show`` is false), else ``None``.
    """
    import matplotlib.pyplot as plt

    if isinstance(data, AnnData):
        if key not in data.uns or "history" not in data.uns[key]:
            raise ValueError(
                f"adata.uns[{key!r}]['history'] not found; run scgan_cluster.tl.clustergan first."
            )
        history = data.uns[key]["history"]
    elif isinstance(data, dict):
        history = data
    elif hasattr(data, "history_"):
        history = data.history_
    else:
        raise TypeError(
            f"Expected an AnnData, a ClusterGAN or a history dict, got {type(data).__name__}."
        )
    if not history or "iteration" not in history:
        raise ValueError("The history is empty: train the model first.")
    unknown = [k for k in keys if k not in history]
    if unknown:
        raise ValueError(f"Unknown history keys {unknown}; available: {sorted(history)}.")
    it = np.asarray(history["iteration"])
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    for ax, k in zip(axes[0], keys, strict=True):
        ax.plot(it, np.asarray(history[k]), lw=1)
        ax.set_title(_PANELS.get(k, k), fontsize=9)
        ax.set_xlabel("generator iteration")
    fig.tight_layout()
    return finish(fig, axes[0], save, show, bbox_inches=None)
