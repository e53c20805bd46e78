"""Clustering metrics against known labels."""

from ._metrics import ari, cluster_metrics, contingency, hungarian_accuracy, nmi, purity

__all__ = ["ari", "cluster_metrics", "contingency", "hungarian_accuracy", "nmi", "purity"]
