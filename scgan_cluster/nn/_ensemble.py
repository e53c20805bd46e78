"""Ensembles of R independent MLP networks evaluated in one batched pass.

Every tensor gets a leading replica axis: data ``(R, batch, features)``, weights
``(R, in, out)``. A linear layer is one ``torch.baddbmm`` for all replicas, so R models cost
far fewer, larger kernel calls than R separate runs. The replicas share nothing: their losses
are summed, so each replica's gradient is its own, and Adam is elementwise, so training the
stacked parameters is training R models side by side.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ._mlp import MLPCritic, MLPEncoder, MLPGenerator

__all__ = [
    "EnsembleLinear",
    "EnsembleBatchNorm1d",
    "EnsembleGenerator",
    "EnsembleEncoder",
    "EnsembleCritic",
    "stack_ensemble",
    "ENSEMBLE_TYPES",
]


class EnsembleLinear(nn.Module):
    """R linear layers: ``y[r] = x[r] @ weight[r] + bias[r]`` (weight stored as ``(R, in, out)``)."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach().t() for m in layers]).clone())
        if layers[0].bias is not None:
            self.bias = nn.Parameter(
                torch.stack([m.bias.detach() for m in layers]).unsqueeze(1).clone()
            )
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(x, self.weight)
        return torch.baddbmm(self.bias, x, self.weight)

    def input_vjp(self, g: torch.Tensor | None, out_shape: torch.Size) -> torch.Tensor:
        """Vector-Jacobian product with respect to the input (``g`` ``None``: all ones)."""
        wt = self.weight.transpose(1, 2)  # (R, out, in)
        if g is None:
            g = torch.ones(out_shape, dtype=wt.dtype, device=wt.device)
        return torch.bmm(g, wt)

    def unstack(self, r: int, into: nn.Linear) -> None:
        """Copy replica ``r``'s weights into the plain layer ``into``."""
        with torch.no_grad():
            into.weight.copy_(self.weight[r].t())
            if self.bias is not None:
                into.bias.copy_(self.bias[r, 0])


class EnsembleBatchNorm1d(nn.Module):
    """R batch-norm layers: statistics per replica and feature, as ``BatchNorm1d(R * features)``."""

    def __init__(self, layers: Sequence[nn.BatchNorm1d]) -> None:
        super().__init__()
        n, f = len(layers), layers[0].num_features
        first = layers[0]
        self.bn = nn.BatchNorm1d(n * f, eps=first.eps, momentum=first.momentum, affine=first.affine)
        with torch.no_grad():
            if first.affine:
                self.bn.weight.copy_(torch.cat([m.weight for m in layers]))
                self.bn.bias.copy_(torch.cat([m.bias for m in layers]))
            self.bn.running_mean.copy_(torch.cat([m.running_mean for m in layers]))
            self.bn.running_var.copy_(torch.cat([m.running_var for m in layers]))
        self.n_runs, self.num_features = n, f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, b, f = x.shape
        y = self.bn(x.transpose(0, 1).reshape(b, r * f))
        return y.view(b, r, f).transpose(0, 1)

    def unstack(self, r: int, into: nn.BatchNorm1d) -> None:
        """Copy replica ``r``'s parameters and statistics into ``into``."""
        sl = slice(r * self.num_features, (r + 1) * self.num_features)
        with torch.no_grad():
            if self.bn.affine:
                into.weight.copy_(self.bn.weight[sl])
                into.bias.copy_(self.bn.bias[sl])
            into.running_mean.copy_(self.bn.running_mean[sl])
            into.running_var.copy_(self.bn.running_var[sl])
            into.num_batches_tracked.copy_(self.bn.num_batches_tracked)


_ELEMENTWISE = (nn.LeakyReLU, nn.ReLU, nn.Identity, nn.Sigmoid, nn.Tanh)


def _stack_layer(layers: Sequence[nn.Module]) -> nn.Module:
    first = layers[0]
    if isinstance(first, nn.Linear):
        return EnsembleLinear(layers)
    if isinstance(first, nn.BatchNorm1d):
        return EnsembleBatchNorm1d(layers)
    if isinstance(first, _ELEMENTWISE):
        return copy.deepcopy(first)
    raise ValueError(f"layer {type(first).__name__} cannot be stacked into an ensemble.")


def _stack_sequential(seqs: Sequence[nn.Sequential]) -> nn.Sequential:
    return nn.Sequential(*[_stack_layer(group) for group in zip(*seqs, strict=True)])


def _unstack_into(stacked: nn.Sequential, r: int, plain: nn.Sequential) -> None:
    for s, p in zip(stacked, plain, strict=True):
        if isinstance(s, (EnsembleLinear, EnsembleBatchNorm1d)):
            s.unstack(r, p)


class _Ensemble(nn.Module):
    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(models) < 1:
            raise ValueError("an ensemble needs at least one model.")
        self.n_runs = len(models)
        self._template = [copy.deepcopy(models[0]).cpu()]  # a list: not a registered submodule
        self.trunk = _stack_sequential([m.trunk for m in models])
        self.out = EnsembleLinear([m.out for m in models])

    def unstack(self) -> list[nn.Module]:
        """The R replicas as plain modules (copies, on the ensemble's device)."""
        device = self.out.weight.device
        replicas = []
        for r in range(self.n_runs):
            plain = copy.deepcopy(self._template[0]).to(device)
            _unstack_into(self.trunk, r, plain.trunk)
            self.out.unstack(r, plain.out)
            plain.train(self.training)
            replicas.append(plain)
        return replicas


class EnsembleGenerator(_Ensemble):
    """R :class:`~scgan_cluster.nn.MLPGenerator` s: ``(R, batch, zdim) -> (R, batch, n_features)``."""

    def __init__(self, models: Sequence[MLPGenerator]) -> None:
        super().__init__(models)
        self.activation = copy.deepcopy(models[0].activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.activation(self.out(self.trunk(z)))


class EnsembleEncoder(_Ensemble):
    """R :class:`~scgan_cluster.nn.MLPEncoder` s: ``(R, batch, n_features) -> (zn_hat, zc_logits)``."""

    def __init__(self, models: Sequence[MLPEncoder]) -> None:
        super().__init__(models)
        self.n_latent = models[0].n_latent

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.out(self.trunk(x))
        return h[..., : self.n_latent], h[..., self.n_latent :]


class EnsembleCritic(_Ensemble):
    """R :class:`~scgan_cluster.nn.MLPCritic` s: ``(R, batch, n_features) -> (R, batch)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(x)).squeeze(-1)

    def penalty_layers(self) -> list[nn.Module] | None:
        """Layers for the loop's explicit gradient penalty (``None`` with batch-norm)."""
        layers = [*self.trunk, self.out]
        if any(isinstance(m, EnsembleBatchNorm1d) for m in layers):
            return None
        return layers


ENSEMBLE_TYPES = {
    MLPGenerator: EnsembleGenerator,
    MLPEncoder: EnsembleEncoder,
    MLPCritic: EnsembleCritic,
}


def stack_ensemble(models: Sequence[nn.Module]) -> nn.Module:
    """Stack R networks of the same MLP architecture into one ensemble module.

    Parameters
    ----------
    models
        R :class:`MLPGenerator`, :class:`MLPEncoder` or :class:`MLPCritic` of identical shapes.
        Their weights are copied; the ensemble's ``unstack()`` gives them back as plain modules.

    Raises
    ------
    ValueError
        For other architectures (vectorized ensembles support the MLP family only).
    """
    models = list(models)
    kind = type(models[0]) if models else None
    if kind not in ENSEMBLE_TYPES or any(type(m) is not kind for m in models):
        raise ValueError(
            "Vectorized ensembles (n_runs > 1) support the MLP architecture family only "
            f"(MLPGenerator / MLPEncoder / MLPCritic), got {sorted({type(m).__name__ for m in models})}. "
            "Train separate models with different random_state instead."
        )
    return ENSEMBLE_TYPES[kind](models)
