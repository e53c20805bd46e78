"""Models: the user's :class:`ClusterGAN`, the networks and the pooling of their replicas.

:class:`ClusterGAN` (the user's model: a recipe trained, pooled and kept),
:class:`GANEnsemble` (one network, or R replicas of it trained together), and the pooling of
replicas into one clustering and one latent (:class:`Pool`, :class:`ConsensusEmbedding`).
"""

from ._clustergan import ClusterGAN
from ._ensemble import PRIOR_UPDATE_EVERY, GANEnsemble
from ._pool import POOL_METHODS, ConsensusEmbedding, Pool, replica_weights

__all__ = [
    "POOL_METHODS",
    "PRIOR_UPDATE_EVERY",
    "ClusterGAN",
    "ConsensusEmbedding",
    "GANEnsemble",
    "Pool",
    "replica_weights",
]
