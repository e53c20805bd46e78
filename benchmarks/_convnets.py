"""A DCGAN-style conv G / E / D after the paper's appendix 6.2 MNIST spec, FOR TIMING ONLY.

The package's conv architecture is added by another branch (issue 5); until it is merged into
this branch, ``bench_train.py`` times these networks instead (and says so in its output). The
coordinator is expected to switch the benchmark to the registry entry after merging.

Generator: FC 1024 ReLU BN, FC 7x7x128 ReLU BN, 4x4 upconv 64 stride 2 ReLU BN,
4x4 upconv 1 stride 2 sigmoid. Encoder: 4x4 conv 64 s2 LReLU, 4x4 conv 128 s2 LReLU,
FC 1024 LReLU, FC zn+K. Critic: the same trunk, FC 1 linear.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["build_dcgan_mnist"]


class _Generator(nn.Module):
    def __init__(self, n_latent: int, n_clusters: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(n_latent + n_clusters, 1024),
            nn.ReLU(),
            nn.BatchNorm1d(1024),
            nn.Linear(1024, 7 * 7 * 128),
            nn.ReLU(),
            nn.BatchNorm1d(7 * 7 * 128),
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(64),
            nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.fc(z).view(-1, 128, 7, 7))


def _trunk() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 64, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(128 * 7 * 7, 1024),
        nn.LeakyReLU(0.2),
    )


class _Encoder(nn.Module):
    def __init__(self, n_latent: int, n_clusters: int) -> None:
        super().__init__()
        self.n_latent = n_latent
        self.trunk = _trunk()
        self.out = nn.Linear(1024, n_latent + n_clusters)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.out(self.trunk(x))
        return h[:, : self.n_latent], h[:, self.n_latent :]


class _Critic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = _trunk()
        self.out = nn.Linear(1024, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(x)).squeeze(-1)

    def penalty_layers(self) -> list[nn.Module]:
        # piecewise linear (conv / LReLU / flatten / linear): the loop may use its explicit penalty
        return [*self.trunk, self.out]


def build_dcgan_mnist(
    n_latent: int = 30, n_clusters: int = 10
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(generator, encoder, critic) for 1 x 28 x 28 images."""
    return _Generator(n_latent, n_clusters), _Encoder(n_latent, n_clusters), _Critic()
