"""Fully connected generator, encoder and critic (the paper's 10x_73k / synthetic / Pendigits nets)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MLPGenerator", "MLPEncoder", "MLPCritic", "init_normal_"]


def init_normal_(
    module: nn.Module, std: float = 0.02, generator: torch.Generator | None = None
) -> None:
    """Initialise every Linear/Conv weight with N(0, std^2) and every bias with zero (the paper's init).

    Parameters
    ----------
    module
        Initialised in place, with all its submodules (batch-norm scales get N(1, std^2)).
    std
        Standard deviation (the paper: 0.02).
    generator
        Random generator, so that initialisation never touches the global torch state.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, std, generator=generator)
            nn.init.zeros_(m.bias)


def layers_without_batch_norm(layers: list[nn.Module]) -> list[nn.Module] | None:
    """``layers`` as they are, or ``None`` when one is a batch norm.

    A batch norm couples the rows of a batch, which the explicit gradient penalty does not handle.
    """
    if any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in layers):
        return None
    return layers


def _trunk(
    n_in: int, hidden: Sequence[int], leak: float, batch_norm: bool, batch_norm_first: bool = False
) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers.append(nn.Linear(width, h))
        block = [nn.LeakyReLU(leak)]
        if batch_norm:
            block.insert(0 if batch_norm_first else 1, nn.BatchNorm1d(h))
        layers.extend(block)
        width = h
    return nn.Sequential(*layers), width


_OUTPUTS = {"linear": nn.Identity, "sigmoid": nn.Sigmoid}


class MLPGenerator(nn.Module):
    """G: z = (zn, zc) -> x. ``FC h LReLU`` per hidden layer, then ``FC n_features`` and the output map.

    With ``batch_norm=True`` each hidden block is ``FC -> LReLU -> BN`` (the order of the paper's
    tables), or ``FC -> BN -> LReLU`` with ``batch_norm_first=True`` (the order of the authors'
    code). The same options exist on :class:`MLPEncoder` and :class:`MLPCritic`.
    """

    def __init__(
        self,
        n_features: int,
        n_latent: int,
        n_clusters: int,
        hidden: Sequence[int] = (256, 256),
        *,
        leak: float = 0.2,
        batch_norm: bool = False,
        output: str = "linear",
        batch_norm_first: bool = False,
    ) -> None:
        super().__init__()
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {sorted(_OUTPUTS)}, got {output!r}.")
        self.trunk, width = _trunk(
            n_latent + n_clusters, hidden, leak, batch_norm, batch_norm_first
        )
        self.out = nn.Linear(width, n_features)
        self.activation = _OUTPUTS[output]()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.activation(self.out(self.trunk(z)))


class MLPEncoder(nn.Module):
    """E: x -> (zn_hat, zc_logits). The paper applies a softmax to the last K outputs to get zc_hat."""

    def __init__(
        self,
        n_features: int,
        n_latent: int,
        n_clusters: int,
        hidden: Sequence[int] = (256, 256),
        *,
        leak: float = 0.2,
        batch_norm: bool = False,
        batch_norm_first: bool = False,
    ) -> None:
        super().__init__()
        self.n_latent = n_latent
        self.trunk, width = _trunk(n_features, hidden, leak, batch_norm, batch_norm_first)
        self.out = nn.Linear(width, n_latent + n_clusters)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.out(self.trunk(x))
        return h[:, : self.n_latent], h[:, self.n_latent :]


class MLPCritic(nn.Module):
    """D: x -> R, the WGAN critic (no sigmoid)."""

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int] = (256, 256),
        *,
        leak: float = 0.2,
        batch_norm: bool = False,
        batch_norm_first: bool = False,
    ) -> None:
        super().__init__()
        self.trunk, width = _trunk(n_features, hidden, leak, batch_norm, batch_norm_first)
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(x)).squeeze(-1)

    def penalty_layers(self) -> list[nn.Module] | None:
        """The layers whose composition is ``forward`` (before the squeeze).

        Used by the training loop's explicit gradient penalty; ``None`` with batch-norm.
        """
        return layers_without_batch_norm([*self.trunk, self.out])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden layer phi(x) (the paper's "GAN with Disc. phi" baseline)."""
        return self.trunk(x)
