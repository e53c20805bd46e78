"""Training: losses and the loop. Knows tensors and modules only."""

from ._backprop import BackpropResult, backprop_decode
from ._config import TrainConfig
from ._loop import (
    HISTORY_KEYS,
    BatchSource,
    CapturedIteration,
    DrawStream,
    EpochSampler,
    encode,
    run_seconds,
    train_clustergan,
)
from ._losses import (
    batch_mean,
    critic_loss,
    generator_encoder_loss,
    gradient_penalty,
    penalty_at,
    reconstruction_loss,
)
from ._penalty import explicit_input_gradient, penalty_layers
from ._steps import has_batch_norm

__all__ = [
    "BackpropResult",
    "HISTORY_KEYS",
    "BatchSource",
    "CapturedIteration",
    "DrawStream",
    "EpochSampler",
    "TrainConfig",
    "backprop_decode",
    "batch_mean",
    "critic_loss",
    "encode",
    "explicit_input_gradient",
    "generator_encoder_loss",
    "gradient_penalty",
    "has_batch_norm",
    "penalty_at",
    "penalty_layers",
    "reconstruction_loss",
    "run_seconds",
    "train_clustergan",
]
