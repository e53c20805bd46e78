"""Clustering metrics: Hungarian accuracy, purity, NMI and ARI."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm

from scgan_cluster._docs import doc_params

__all__ = ["contingency", "hungarian_accuracy", "purity", "nmi", "ari", "cluster_metrics"]


def _encode(labels, name: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}.")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    if getattr(labels, "isna", None) is not None and bool(np.asarray(labels.isna()).any()):
        raise ValueError(f"{name} contains missing values.")
    return np.unique(arr.astype(str) if arr.dtype == object else arr, return_inverse=True)[
        1
    ].ravel()


@doc_params
def contingency(labels_true, labels_pred) -> np.ndarray:
    """Counts matrix ``C[i, j]`` = cells of true class i put in cluster j (classes, clusters sorted).

    Parameters
    ----------
    {doc_labels}
    """
    t = _encode(labels_true, "labels_true")
    p = _encode(labels_pred, "labels_pred")
    if len(t) != len(p):
        raise ValueError(f"labels_true and labels_pred differ in length ({len(t)} vs {len(p)}).")
    if len(t) == 0:
        raise ValueError("The labels are empty.")
    c = np.zeros((t.max() + 1, p.max() + 1), dtype=np.int64)
    np.add.at(c, (t, p), 1)
    return c


@doc_params
def hungarian_accuracy(labels_true, labels_pred) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes (Hungarian algorithm).

    Clusters left without a class (more clusters than classes) count as wrong.

    Parameters
    ----------
    {doc_labels}
    """
    c = contingency(labels_true, labels_pred)
    rows, cols = linear_sum_assignment(-c)
    return float(c[rows, cols].sum() / c.sum())


@doc_params
def purity(labels_true, labels_pred) -> float:
    """Purity: every cluster is mapped to its majority class (several clusters may share a class).

    This is what the official ClusterGAN code reports as "ACC".

    Parameters
    ----------
    {doc_labels}
    """
    c = contingency(labels_true, labels_pred)
    return float(c.max(axis=0).sum() / c.sum())


@doc_params
def nmi(labels_true, labels_pred, *, average_method: str = "arithmetic") -> float:
    """Normalised mutual information, ``I(T; P) / mean(H(T), H(P))``.

    ``average_method`` is scikit-learn's: ``"arithmetic"`` (its default since 0.22) or
    ``"geometric"`` (the default of the scikit-learn that the paper's 2018 code used), ``"min"``, ``"max"``.

    Parameters
    ----------
    {doc_labels}
    average_method
        How the two entropies are averaged in the denominator.
    """
    contingency(labels_true, labels_pred)  # validates
    return float(
        skm.normalized_mutual_info_score(
            _encode(labels_true, "labels_true"),
            _encode(labels_pred, "labels_pred"),
            average_method=average_method,
        )
    )


@doc_params
def ari(labels_true, labels_pred) -> float:
    """Adjusted Rand index (Hubert & Arabie).

    Parameters
    ----------
    {doc_labels}
    """
    contingency(labels_true, labels_pred)
    return float(
        skm.adjusted_rand_score(
            _encode(labels_true, "labels_true"), _encode(labels_pred, "labels_pred")
        )
    )


@doc_params
def cluster_metrics(
    labels_true, labels_pred, *, average_method: str = "arithmetic"
) -> dict[str, float]:
    """All four metrics: ``{"acc", "purity", "nmi", "ari"}`` (``acc`` is Hungarian-matched).

    Parameters
    ----------
    {doc_labels}
    average_method
        Passed to :func:`nmi`.
    """
    return {
        "acc": hungarian_accuracy(labels_true, labels_pred),
        "purity": purity(labels_true, labels_pred),
        "nmi": nmi(labels_true, labels_pred, average_method=average_method),
        "ari": ari(labels_true, labels_pred),
    }
