"""Ensembles of R independent networks evaluated in one batched pass.

Every tensor the training loop sees gets a leading replica axis: data ``(R, batch, features)``
or ``(R, batch, C, H, W)``. Inside an ensemble, fully connected layers keep that layout with
weights ``(R, in, out)``: a linear layer is one ``torch.baddbmm`` for all replicas. Convolutions
work on the grouped layout ``(batch, R * C, H, W)``: one convolution with ``groups=R`` whose
group r holds replica r's filters, so each replica sees only its own channels; a batch norm
over the ``R * C`` channels of that layout keeps per-replica statistics. Flatten / unflatten
layers switch between the two layouts. R models thus cost far fewer, larger kernel calls than
R separate runs. The replicas share nothing: their losses are summed, so each replica's
gradient is its own, and Adam is elementwise, so training the stacked parameters is training R
models side by side.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ._conv import ConvCritic, ConvEncoder, ConvGenerator
from ._mlp import MLPCritic, MLPEncoder, MLPGenerator

__all__ = [
    "EnsembleLinear",
    "EnsembleBatchNorm1d",
    "EnsembleConv2d",
    "EnsembleConvTranspose2d",
    "EnsembleBatchNorm2d",
    "EnsembleGenerator",
    "EnsembleEncoder",
    "EnsembleCritic",
    "EnsembleConvGenerator",
    "EnsembleConvEncoder",
    "EnsembleConvCritic",
    "stack_ensemble",
    "unstack_sequential",
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

    def input_vjp(
        self, g: torch.Tensor | None, out_shape: torch.Size, input_shape: torch.Size | None = None
    ) -> torch.Tensor:
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


def _concat_into(target: nn.Module, layers: Sequence[nn.Module], *names: str) -> None:
    """Set each tensor ``name`` of ``target`` to the replicas' tensors joined along dim 0."""
    with torch.no_grad():
        for name in names:
            if getattr(target, name) is not None:
                getattr(target, name).copy_(torch.cat([getattr(m, name) for m in layers]))


class _EnsembleBatchNorm(nn.Module):
    """R batch-norm layers as one batch norm over ``R * features`` (``_norm``): per-replica statistics."""

    _norm: type[nn.modules.batchnorm._BatchNorm]

    def __init__(self, layers: Sequence[nn.modules.batchnorm._BatchNorm]) -> None:
        super().__init__()
        n, f = len(layers), layers[0].num_features
        first = layers[0]
        self.bn = self._norm(n * f, eps=first.eps, momentum=first.momentum, affine=first.affine)
        _concat_into(self.bn, layers, "weight", "bias", "running_mean", "running_var")
        self.n_runs, self.num_features = n, f

    def unstack(self, r: int, into: nn.modules.batchnorm._BatchNorm) -> None:
        """Copy replica ``r``'s parameters and statistics into ``into``."""
        sl = slice(r * self.num_features, (r + 1) * self.num_features)
        with torch.no_grad():
            if self.bn.affine:
                into.weight.copy_(self.bn.weight[sl])
                into.bias.copy_(self.bn.bias[sl])
            into.running_mean.copy_(self.bn.running_mean[sl])
            into.running_var.copy_(self.bn.running_var[sl])
            into.num_batches_tracked.copy_(self.bn.num_batches_tracked)


class EnsembleBatchNorm1d(_EnsembleBatchNorm):
    """R batch-norm layers: statistics per replica and feature, as ``BatchNorm1d(R * features)``."""

    _norm = nn.BatchNorm1d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, b, f = x.shape
        y = self.bn(x.transpose(0, 1).reshape(b, r * f))
        return y.view(b, r, f).transpose(0, 1)


def _check_same(layers: Sequence[nn.Module], *names: str) -> None:
    first = layers[0]
    for name in names:
        if any(getattr(m, name) != getattr(first, name) for m in layers):
            raise ValueError(f"the replicas' {type(first).__name__} layers differ in {name}.")


class EnsembleConv2d(nn.Conv2d):
    """R 2-D convolutions on the grouped layout: ``(batch, R * C_in, H, W) -> (batch, R * C_out, H', W')``.

    An ``nn.Conv2d`` with ``groups = R`` (times the replicas' own groups): group r's filters
    are replica r's, applied to replica r's input channels only. Being a ``Conv2d``, it takes
    part in the explicit gradient penalty as any convolution does.
    """

    def __init__(self, layers: Sequence[nn.Conv2d]) -> None:
        _check_same(layers, "in_channels", "out_channels", "kernel_size", "stride", "padding")
        _check_same(layers, "dilation", "groups", "padding_mode")
        first, n = layers[0], len(layers)
        super().__init__(
            n * first.in_channels,
            n * first.out_channels,
            first.kernel_size,
            stride=first.stride,
            padding=first.padding,
            dilation=first.dilation,
            groups=n * first.groups,
            bias=first.bias is not None,
            padding_mode=first.padding_mode,
        )
        self.n_runs, self.replica_out_channels = n, first.out_channels
        _concat_into(self, layers, "weight", "bias")

    def unstack(self, r: int, into: nn.Conv2d) -> None:
        """Copy replica ``r``'s filters into the plain layer ``into``."""
        sl = slice(r * self.replica_out_channels, (r + 1) * self.replica_out_channels)
        with torch.no_grad():
            into.weight.copy_(self.weight[sl])
            if self.bias is not None:
                into.bias.copy_(self.bias[sl])


class EnsembleConvTranspose2d(nn.Module):
    """R transposed 2-D convolutions on the grouped layout (one ``nn.ConvTranspose2d``, ``groups = R``)."""

    def __init__(self, layers: Sequence[nn.ConvTranspose2d]) -> None:
        super().__init__()
        _check_same(layers, "in_channels", "out_channels", "kernel_size", "stride", "padding")
        _check_same(layers, "output_padding", "dilation", "groups", "padding_mode")
        first, n = layers[0], len(layers)
        if first.groups != 1:
            raise ValueError("grouped transposed convolutions cannot be stacked into an ensemble.")
        self.n_runs, self.in_channels = n, first.in_channels
        self.out_channels = first.out_channels
        self.conv = nn.ConvTranspose2d(
            n * first.in_channels,
            n * first.out_channels,
            first.kernel_size,
            stride=first.stride,
            padding=first.padding,
            output_padding=first.output_padding,
            groups=n,
            bias=first.bias is not None,
            dilation=first.dilation,
            padding_mode=first.padding_mode,
        )
        # a transposed convolution's weight is (in, out / groups, kh, kw): replicas by input
        _concat_into(self.conv, layers, "weight", "bias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def unstack(self, r: int, into: nn.ConvTranspose2d) -> None:
        """Copy replica ``r``'s filters into the plain layer ``into``."""
        with torch.no_grad():
            into.weight.copy_(self.conv.weight[r * self.in_channels : (r + 1) * self.in_channels])
            if self.conv.bias is not None:
                into.bias.copy_(self.conv.bias[r * self.out_channels : (r + 1) * self.out_channels])


class EnsembleBatchNorm2d(_EnsembleBatchNorm):
    """R 2-D batch norms on the grouped layout: one ``BatchNorm2d(R * C)``, statistics per replica."""

    _norm = nn.BatchNorm2d

    def __init__(self, layers: Sequence[nn.BatchNorm2d]) -> None:
        _check_same(layers, "num_features", "eps", "momentum", "affine")
        super().__init__(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x)


class _ToStacked(nn.Module):
    """Flatten of the grouped layout: ``(batch, R * C, H, W) -> (R, batch, C * H * W)``."""

    def __init__(self, n_runs: int) -> None:
        super().__init__()
        self.n_runs = n_runs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.n_runs, -1).transpose(0, 1)

    def input_vjp(
        self, g: torch.Tensor, out_shape: torch.Size, input_shape: torch.Size
    ) -> torch.Tensor:
        """The gradient of the stacked output, back on the grouped input's layout."""
        return g.transpose(0, 1).reshape(input_shape)


class _GroupImages(nn.Module):
    """``(R, batch, C, H, W) -> (batch, R * C, H, W)``: stacked images onto the grouped layout."""

    def __init__(self, n_runs: int) -> None:
        super().__init__()
        self.n_runs = n_runs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _grouped_images(x)

    def input_vjp(
        self, g: torch.Tensor, out_shape: torch.Size, input_shape: torch.Size
    ) -> torch.Tensor:
        """The gradient of the grouped output, back on the stacked images' layout."""
        r, b, c, h, w = input_shape
        return g.reshape(b, r, c, h, w).transpose(0, 1)


class _ToGrouped(nn.Module):
    """Unflatten into the grouped layout: ``(R, batch, C * h * w) -> (batch, R * C, h, w)``."""

    def __init__(self, n_runs: int, shape: Sequence[int]) -> None:
        super().__init__()
        self.n_runs, self.shape = n_runs, tuple(int(s) for s in shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = self.shape
        return x.transpose(0, 1).reshape(x.shape[1], self.n_runs * c, h, w)


def _grouped_images(x: torch.Tensor) -> torch.Tensor:
    """``(R, batch, C, H, W) -> (batch, R * C, H, W)``."""
    r, b, c, h, w = x.shape
    return x.transpose(0, 1).reshape(b, r * c, h, w)


_ELEMENTWISE = (nn.LeakyReLU, nn.ReLU, nn.Identity, nn.Sigmoid, nn.Tanh)
_STACKED = {
    nn.Linear: EnsembleLinear,
    nn.BatchNorm1d: EnsembleBatchNorm1d,
    nn.Conv2d: EnsembleConv2d,
    nn.ConvTranspose2d: EnsembleConvTranspose2d,
    nn.BatchNorm2d: EnsembleBatchNorm2d,
}


def _stack_layer(layers: Sequence[nn.Module]) -> nn.Module:
    first = layers[0]
    if type(first) in _STACKED:
        return _STACKED[type(first)](layers)
    if isinstance(first, _ELEMENTWISE):
        return copy.deepcopy(first)
    if isinstance(first, nn.Flatten) and (first.start_dim, first.end_dim) == (1, -1):
        return _ToStacked(len(layers))
    if isinstance(first, nn.Unflatten) and first.dim == 1 and len(first.unflattened_size) == 3:
        return _ToGrouped(len(layers), first.unflattened_size)
    raise ValueError(f"layer {type(first).__name__} cannot be stacked into an ensemble.")


def _stack_sequential(seqs: Sequence[nn.Sequential]) -> nn.Sequential:
    return nn.Sequential(*[_stack_layer(group) for group in zip(*seqs, strict=True)])


def unstack_sequential(stacked: nn.Sequential, r: int, plain: nn.Sequential) -> None:
    """Copy replica ``r`` of a stacked sequence of layers into the plain sequence ``plain``.

    The two sequences pair up layer by layer (a stacked layer with the plain layer it stacks);
    layers without parameters (activations) are skipped.

    Parameters
    ----------
    stacked
        Layers as :func:`stack_ensemble` builds them (each with an ``unstack(r, plain)``).
    r
        The replica.
    plain
        The plain layers to overwrite, in the same order.
    """
    for s, p in zip(stacked, plain, strict=True):
        if hasattr(s, "unstack"):
            s.unstack(r, p)


class _Ensemble(nn.Module):
    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(models) < 1:
            raise ValueError("an ensemble needs at least one model.")
        self.n_runs = len(models)
        self._template = [copy.deepcopy(models[0]).cpu()]  # a list: not a registered submodule
        self.trunk = _stack_sequential([m.trunk for m in models])
        self.out = _stack_layer([m.out for m in models])

    def unstack(self) -> list[nn.Module]:
        """The R replicas as plain modules (copies, on the ensemble's device)."""
        device = next(self.parameters()).device
        replicas = []
        for r in range(self.n_runs):
            plain = copy.deepcopy(self._template[0]).to(device)
            unstack_sequential(self.trunk, r, plain.trunk)
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

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Each replica's last hidden layer phi(x): ``(R, batch, width)``."""
        return self.trunk(x)

    def penalty_layers(self) -> list[nn.Module] | None:
        """Layers for the loop's explicit gradient penalty (``None`` with batch-norm)."""
        layers = [*self.trunk, self.out]
        if any(isinstance(m, _EnsembleBatchNorm) for m in layers):
            return None
        return layers


class EnsembleConvGenerator(EnsembleGenerator):
    """R :class:`~scgan_cluster.nn.ConvGenerator` s: ``(R, batch, zdim) -> (R, batch, C, H, W)``."""

    def __init__(self, models: Sequence[ConvGenerator]) -> None:
        super().__init__(models)
        self.image_shape = models[0].image_shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = super().forward(z)  # grouped: (batch, R * C, H, W)
        c, h, w = self.image_shape
        return y.view(y.shape[0], self.n_runs, c, h, w).transpose(0, 1)


class EnsembleConvEncoder(EnsembleEncoder):
    """R :class:`~scgan_cluster.nn.ConvEncoder` s: ``(R, batch, C, H, W) -> (zn_hat, zc_logits)``."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return super().forward(_grouped_images(x))


class EnsembleConvCritic(EnsembleCritic):
    """R :class:`~scgan_cluster.nn.ConvCritic` s: ``(R, batch, C, H, W) -> (R, batch)``."""

    def __init__(self, models: Sequence[ConvCritic]) -> None:
        super().__init__(models)
        self.group = _GroupImages(self.n_runs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.group(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Each replica's last hidden layer phi(x): ``(R, batch, width)``."""
        return self.trunk(self.group(x))

    def penalty_layers(self) -> list[nn.Module] | None:
        """The layers whose composition is ``forward``, for the explicit gradient penalty.

        ``None`` with batch-norm (the loop then takes autograd's double backward).
        """
        layers = super().penalty_layers()
        return None if layers is None else [self.group, *layers]


ENSEMBLE_TYPES = {
    MLPGenerator: EnsembleGenerator,
    MLPEncoder: EnsembleEncoder,
    MLPCritic: EnsembleCritic,
    ConvGenerator: EnsembleConvGenerator,
    ConvEncoder: EnsembleConvEncoder,
    ConvCritic: EnsembleConvCritic,
}


def stack_ensemble(models: Sequence[nn.Module]) -> nn.Module:
    """Stack R networks of the same architecture into one ensemble module.

    Parameters
    ----------
    models
        R generators, encoders or critics of one of the package's families (MLP:
        :class:`MLPGenerator` / :class:`MLPEncoder` / :class:`MLPCritic`; convolutional:
        :class:`ConvGenerator` / :class:`ConvEncoder` / :class:`ConvCritic`) of identical
        shapes. Their weights are copied; the ensemble's ``unstack()`` gives them back as plain
        modules.

    Raises
    ------
    ValueError
        For other modules, or replicas whose layers differ.
    """
    models = list(models)
    kind = type(models[0]) if models else None
    if kind not in ENSEMBLE_TYPES or any(type(m) is not kind for m in models):
        raise ValueError(
            "Vectorized ensembles (n_runs > 1) support the package's MLP and convolutional "
            f"networks only ({', '.join(t.__name__ for t in ENSEMBLE_TYPES)}), got "
            f"{sorted({type(m).__name__ for m in models})}. "
            "Train separate models with different random_state instead."
        )
    return ENSEMBLE_TYPES[kind](models)
