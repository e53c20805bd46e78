"""Training: losses and the loop. Knows tensors and modules only."""

from ._backprop import BackpropResult, backprop_decode
from ._loop import HISTORY_KEYS, BatchSource, EpochSampler, TrainConfig, encode, train_clustergan
from ._losses import critic_loss, generator_encoder_loss, gradient_penalty

__all__ = [
    "BackpropResult",
    "HISTORY_KEYS",
    "BatchSource",
    "EpochSampler",
    "TrainConfig",
    "backprop_decode",
    "critic_loss",
    "encode",
    "generator_encoder_loss",
    "gradient_penalty",
    "train_clustergan",
]
