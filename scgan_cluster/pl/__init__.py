"""Plotting: training curves, samples generated per cluster, interpolation between clusters."""

from ._history import training_history
from ._interpolation import interpolation
from ._samples import cluster_samples

__all__ = ["cluster_samples", "interpolation", "training_history"]
