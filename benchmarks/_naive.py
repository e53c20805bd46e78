"""A naive ClusterGAN training loop, written the way a typical re-implementation is written.

This is the *reference* that ``bench_train.py`` times the package trainer against, and that
``tests/test_train.py`` checks the package trainer against numerically. It computes the same
algorithm as :func:`scgan_cluster.train.train_clustergan` (Algorithm 2 of the paper with WGAN-GP:
``n_critic`` critic steps, then one joint generator + encoder step), but in the textbook style:

* minibatches from a ``DataLoader`` over a ``TensorDataset`` (shuffled, last partial batch dropped),
* fresh noise / one-hot / interpolation tensors created at every step,
* separate critic forward passes for real, fake and interpolated samples,
* the gradient penalty by ``torch.autograd.grad(..., create_graph=True)``,
* default ``torch.optim.Adam`` (no foreach / fused flag),
* every loss read back with ``.item()`` at every step,
* the critic's parameters keep ``requires_grad`` during the generator step.

For the equivalence test the random draws can be injected (``draws``), so that the same
minibatches, noise and interpolation weights reach both loops.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["NaiveDraws", "naive_train"]


@dataclass
class NaiveDraws:
    """The random quantities of one generator iteration (lists have ``n_critic`` entries)."""

    real: list[torch.Tensor]  # critic minibatches
    z_critic: list[torch.Tensor]  # latent codes for the critic's fakes
    eps: list[torch.Tensor]  # interpolation weights, shape (batch,) + (1,) * (data.dim() - 1)
    z: torch.Tensor  # latent code of the generator step
    zn: torch.Tensor  # its continuous part
    k: torch.Tensor  # its cluster index


def _fresh_draws(
    x: torch.Tensor,
    n_latent: int,
    n_clusters: int,
    sigma: float,
    batch_size: int,
    n_critic: int,
    max_iter: int,
    seed: int,
) -> Iterator[NaiveDraws]:
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        TensorDataset(x), batch_size=batch_size, shuffle=True, drop_last=True, generator=gen
    )
    batches = iter(loader)

    def next_batch() -> torch.Tensor:
        nonlocal batches
        try:
            return next(batches)[0]
        except StopIteration:
            batches = iter(loader)
            return next(batches)[0]

    def sample_z() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        zn = torch.randn(batch_size, n_latent, generator=gen) * sigma
        k = torch.randint(0, n_clusters, (batch_size,), generator=gen)
        zc = F.one_hot(k, n_clusters).float()
        return torch.cat([zn, zc], dim=1), zn, k

    eps_shape = (batch_size,) + (1,) * (x.dim() - 1)
    for _ in range(max_iter):
        real, zcrit, eps = [], [], []
        for _ in range(n_critic):
            real.append(next_batch())
            zcrit.append(sample_z()[0])
            eps.append(torch.rand(eps_shape, generator=gen))
        z, zn, k = sample_z()
        yield NaiveDraws(real, zcrit, eps, z, zn, k)


def naive_train(
    generator: torch.nn.Module,
    encoder: torch.nn.Module,
    critic: torch.nn.Module,
    x: torch.Tensor,
    *,
    n_latent: int,
    n_clusters: int,
    sigma: float = 0.1,
    max_iter: int = 100,
    batch_size: int = 64,
    n_critic: int = 5,
    lr: float = 1e-4,
    betas: tuple[float, float] = (0.5, 0.9),
    gp_weight: float = 10.0,
    beta_n: float = 10.0,
    beta_c: float = 10.0,
    seed: int = 0,
    draws: Iterator[NaiveDraws] | None = None,
) -> dict[str, list[float]]:
    """Train in place; returns per-step losses (read with ``.item()`` every step).

    ``draws`` (optional) supplies the random quantities of each generator iteration; by default
    they are drawn fresh at every step from a ``torch.Generator`` seeded with ``seed``.
    """
    if draws is None:
        draws = _fresh_draws(x, n_latent, n_clusters, sigma, batch_size, n_critic, max_iter, seed)
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas)
    opt_ge = torch.optim.Adam(
        list(generator.parameters()) + list(encoder.parameters()), lr=lr, betas=betas
    )
    log: dict[str, list[float]] = {"d_loss": [], "w": [], "gp": [], "g_loss": []}
    generator.train()
    encoder.train()
    critic.train()
    for _, d in zip(range(max_iter), draws, strict=False):
        for j in range(n_critic):
            real = d.real[j]
            fake = generator(d.z_critic[j]).detach()
            d_real = critic(real).mean()
            d_fake = critic(fake).mean()
            eps = d.eps[j]
            interp = eps * real + (1 - eps) * fake
            interp.requires_grad_(True)
            out = critic(interp)
            grad = torch.autograd.grad(
                outputs=out,
                inputs=interp,
                grad_outputs=torch.ones_like(out),
                create_graph=True,
                retain_graph=True,
            )[0]
            gp = ((grad.view(grad.size(0), -1).norm(2, dim=1) - 1) ** 2).mean()
            d_loss = d_fake - d_real + gp_weight * gp
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            log["d_loss"].append(d_loss.item())
            log["w"].append((d_real - d_fake).item())
            log["gp"].append(gp.item())
        opt_ge.zero_grad()
        fake = generator(d.z)
        zn_hat, zc_logits = encoder(fake)
        g_loss = (
            -critic(fake).mean()
            + beta_n * ((d.zn - zn_hat) ** 2).sum(dim=1).mean()
            + beta_c * F.cross_entropy(zc_logits, d.k)
        )
        g_loss.backward()
        opt_ge.step()
        log["g_loss"].append(g_loss.item())
    return log
