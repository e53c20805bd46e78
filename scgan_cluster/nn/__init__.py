"""Pure torch modules: the ClusterGAN prior and the generator / encoder / critic architectures."""

from ._conv import ConvCritic, ConvEncoder, ConvGenerator
from ._ensemble import (
    EnsembleBatchNorm1d,
    EnsembleBatchNorm2d,
    EnsembleConv2d,
    EnsembleConvCritic,
    EnsembleConvEncoder,
    EnsembleConvGenerator,
    EnsembleConvTranspose2d,
    EnsembleCritic,
    EnsembleEncoder,
    EnsembleGenerator,
    EnsembleLinear,
    stack_ensemble,
    unstack_sequential,
)
from ._mlp import MLPCritic, MLPEncoder, MLPGenerator, init_normal_
from ._prior import MixedPrior
from ._registry import (
    ARCHITECTURES,
    TRAINING_KEYS,
    Architecture,
    build_networks,
    pick_architecture,
    register_architecture,
)

__all__ = [
    "ARCHITECTURES",
    "TRAINING_KEYS",
    "Architecture",
    "ConvCritic",
    "ConvEncoder",
    "ConvGenerator",
    "EnsembleBatchNorm1d",
    "EnsembleBatchNorm2d",
    "EnsembleConv2d",
    "EnsembleConvCritic",
    "EnsembleConvEncoder",
    "EnsembleConvGenerator",
    "EnsembleConvTranspose2d",
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
    "pick_architecture",
    "register_architecture",
    "stack_ensemble",
    "unstack_sequential",
]
