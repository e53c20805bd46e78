"""Pure torch modules: the ClusterGAN prior and the generator / encoder / critic architectures."""

from ._ensemble import (
    EnsembleBatchNorm1d,
    EnsembleCritic,
    EnsembleEncoder,
    EnsembleGenerator,
    EnsembleLinear,
    stack_ensemble,
)
from ._mlp import MLPCritic, MLPEncoder, MLPGenerator, init_normal_
from ._prior import MixedPrior
from ._registry import ARCHITECTURES, Architecture, build_networks, register_architecture

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "EnsembleBatchNorm1d",
    "EnsembleCritic",
    "EnsembleEncoder",
    "EnsembleGenerator",
    "EnsembleLinear",
    "MLPCritic",
    "MLPEncoder",
    "MLPGenerator",
    "MixedPrior",
    "build_networks",
    "init_normal_",
    "register_architecture",
    "stack_ensemble",
]
