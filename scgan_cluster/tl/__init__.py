"""Tools: ClusterGAN clustering of AnnData."""

from ._clustergan import clustergan

__all__ = ["clustergan"]
