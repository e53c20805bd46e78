"""``fit_tensor``: ClusterGAN on a plain array or tensor, vectors or images, without AnnData."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._settings import logger
from .metrics import cluster_metrics
from .model import GANEnsemble

__all__ = ["fit_tensor"]


def fit_tensor(
    x: np.ndarray | torch.Tensor | Any,
    n_clusters: int,
    *,
    labels: np.ndarray | Any | None = None,
    architecture: str = "auto",
    preprocess: bool = False,
    **kwargs: Any,
) -> GANEnsemble:
    """Train a :class:`~scgan_cluster.model.GANEnsemble` on an array or tensor and cluster it.

    The entry point for data that are not single cells: a matrix ``(n, d)`` (numpy, scipy
    sparse or torch) or an image batch ``(n, C, H, W)`` (numpy or torch). The architecture is
    picked by the data's shape (vectors: ``"mlp"``; images: the paper's conv networks for that
    height and width) unless named, and every hyperparameter not passed takes the paper's value
    for that architecture.

    Parameters
    ----------
    x
        The data. Vectors are used as they are (``preprocess=False``); they should lie roughly in
        [0, 1], and in [0, 1] for architectures with a sigmoid output. Image pixels must lie in
        [0, 1]; integer (8-bit) images are divided by 255.
    n_clusters
        K, the number of clusters.
    labels
        Optional reference labels, one per sample. They are not used in training; the clustering
        is scored against them (:func:`scgan_cluster.metrics.cluster_metrics`) into
        ``model.scores_``.
    architecture
        An entry of :data:`scgan_cluster.nn.ARCHITECTURES` (e.g. ``"pendigits"``,
        ``"mnist"``), or ``"auto"`` to pick one by shape.
    preprocess
        Apply the paper's count preprocessing to vectors (see :meth:`GANEnsemble.fit`); images are
        never preprocessed.
    **kwargs
        Any other argument of :class:`~scgan_cluster.model.GANEnsemble` (``n_latent``, ``beta_n``,
        ``batch_size``, ``max_iter``, ``random_state``, ``device``, ...).

    Returns
    -------
    The trained model, with ``labels_``, ``latent_``, ``proba_``, and ``scores_`` (a dict of
    ``acc``, ``purity``, ``nmi``, ``ari``; ``None`` without ``labels``).

    Examples
    --------
    >>> import torch, scgan_cluster as scg
    >>> images = torch.rand(1000, 1, 28, 28)  # pixels in [0, 1]
    >>> model = scg.fit_tensor(images, 10, max_iter=200)  # the paper's MNIST networks
    >>> model.generate(8, cluster=0).shape
    (8, 1, 28, 28)
    """
    n = int(x.shape[0]) if hasattr(x, "shape") else None
    y = None
    if labels is not None:
        y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels
        y = np.asarray(y)
        if y.ndim != 1 or (n is not None and y.shape[0] != n):
            raise ValueError(
                f"labels must be 1-D with one entry per sample ({n}), got shape {y.shape}."
            )
    model = GANEnsemble(n_clusters, architecture=architecture, **kwargs)
    model.fit(x, preprocess=preprocess)
    model.scores_ = None if y is None else cluster_metrics(y, model.labels_)
    if model.scores_ is not None:
        logger.info(
            "fit_tensor: ACC %.3f, purity %.3f, NMI %.3f, ARI %.3f against the given labels",
            model.scores_["acc"],
            model.scores_["purity"],
            model.scores_["nmi"],
            model.scores_["ari"],
        )
    return model
