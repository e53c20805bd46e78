"""The paper's synthetic data (Section 4.1): a 2-D Gaussian mixture pushed through x = f(U f(W z))."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from scgan_cluster._validation import check_positive_int

__all__ = ["synthetic"]


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def synthetic(
    n_per_cluster: int = 2500,
    n_clusters: int = 4,
    *,
    n_features: int = 100,
    n_hidden: int = 10,
    radius: float = 2.0,
    cluster_std: float = 0.5,
    random_state: int = 0,
) -> AnnData:
    """The ClusterGAN paper's synthetic dataset.

    ``n_clusters`` Gaussian components in 2-D (``n_per_cluster`` points each) form the latent Z;
    the data are ``x = sigmoid(U sigmoid(W z))`` with ``W`` (``n_hidden`` x 2) and ``U``
    (``n_features`` x ``n_hidden``) of i.i.d. N(0, 1) entries, as in the paper (4 components,
    W 10x2, U 100x10, 2,500 points each). The paper does not give the means and spread of the
    components; here the means lie evenly on a circle of ``radius`` and each component is
    isotropic with standard deviation ``cluster_std``.

    Parameters
    ----------
    n_per_cluster
        Points per component.
    n_clusters
        Number of components (the true K).
    n_features
        Dimension of x (rows of U).
    n_hidden
        Rows of W.
    radius
        Distance of the component means from the origin.
    cluster_std
        Standard deviation of each component along both axes.
    random_state
        Seed of a local numpy generator.

    Returns
    -------
    AnnData with ``X`` (float32, values in (0, 1)), ``obs["label"]`` (categorical "0".."K-1"),
    ``obsm["Z"]`` (the 2-D latent) and ``uns["synthetic"]`` (W, U, the means and the settings).
    """
    for name, value in (
        ("n_per_cluster", n_per_cluster),
        ("n_clusters", n_clusters),
        ("n_features", n_features),
        ("n_hidden", n_hidden),
    ):
        check_positive_int(value, name)
    if radius < 0 or cluster_std <= 0:
        raise ValueError("radius must be >= 0 and cluster_std > 0.")
    rng = np.random.default_rng(random_state)
    angles = 2 * np.pi * np.arange(n_clusters) / n_clusters
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = np.repeat(np.arange(n_clusters), n_per_cluster)
    z = means[labels] + cluster_std * rng.standard_normal((len(labels), 2))
    w = rng.standard_normal((n_hidden, 2))
    u = rng.standard_normal((n_features, n_hidden))
    x = _sigmoid(_sigmoid(z @ w.T) @ u.T).astype(np.float32)
    obs = pd.DataFrame(
        {
            "label": pd.Categorical(
                labels.astype(str), categories=[str(k) for k in range(n_clusters)]
            )
        },
        index=[f"cell_{i}" for i in range(len(labels))],
    )
    adata = AnnData(x, obs=obs, var=pd.DataFrame(index=[f"x{j}" for j in range(n_features)]))
    adata.obsm["Z"] = z.astype(np.float32)
    adata.uns["synthetic"] = {
        "W": w,
        "U": u,
        "means": means,
        "cluster_std": float(cluster_std),
        "random_state": int(random_state),
    }
    return adata
