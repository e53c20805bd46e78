"""Backpropagation decoding of the latent (Algorithm 1 of the paper): x -> z* without an encoder."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from scgan_cluster._validation import check_positive_int

__all__ = ["BackpropResult", "backprop_decode"]


@dataclass
class BackpropResult:
    """What :func:`backprop_decode` returns, on the CPU.

    Attributes
    ----------
    z
        ``(n, n_latent + n_clusters)``: the decoded ``z* = (zn*, e_k*)``.
    zn
        ``(n, n_latent)``: its continuous part.
    k
        ``(n,)`` int64: the mode ``k*`` of the best restart (the cluster of each point).
    loss
        ``(n,)``: the objective of the best restart, ``||G(z*) - x||_1 + lam ||zn*||_2^2``.
    restart_loss
        ``(n, n_clusters)``: the final objective of every restart.
    """

    z: torch.Tensor
    zn: torch.Tensor
    k: torch.Tensor
    loss: torch.Tensor
    restart_loss: torch.Tensor


def _objective(
    generator: nn.Module, zn: torch.Tensor, zc: torch.Tensor, target: torch.Tensor, lam: float
) -> torch.Tensor:
    """Per-row ``||G(zn, zc) - x||_1 + lam ||zn||^2``."""
    out = generator(torch.cat([zn, zc], dim=1))
    return (out - target).abs().flatten(1).sum(dim=1) + lam * zn.pow(2).sum(dim=1)


def backprop_decode(
    generator: nn.Module,
    x: torch.Tensor,
    n_clusters: int,
    *,
    n_latent: int,
    sigma: float = 0.1,
    lam: float = 1.0,
    n_steps: int = 5000,
    lr: float = 0.01,
    clip: float = 0.6,
    chunk_size: int = 256,
    noise_generator: torch.Generator | None = None,
) -> BackpropResult:
    """Decode the latent of each row of ``x`` by backpropagation through ``generator`` (Algorithm 1).

    For each of the K modes, ``zn`` starts from ``N(0, sigma^2 I)`` with ``zc = e_k`` fixed, and
    ``n_steps`` Adam steps minimise ``||G(zn, e_k) - x||_1 + lam ||zn||_2^2`` over ``zn`` only,
    clipping ``zn`` to ``[-clip, clip]`` after every step; the restart with the lowest final
    objective gives ``z*``. The paper uses 5,000 Adam iterations per point (appendix 6.2) and
    clips to [-0.6, 0.6]; it states neither ``lam`` nor the Adam learning rate, whose defaults here
    are our choice.

    All restarts of a chunk of points are optimised together as one batch: every row's objective
    depends on its own ``zn`` only and Adam acts coordinate-wise, so this is the same as
    optimising each point and restart on its own. The generator is put in eval mode (batch norm
    uses its running statistics, so rows do not interact) and its parameters are not changed.

    Parameters
    ----------
    generator
        G, mapping ``(m, n_latent + n_clusters)`` to rows shaped like ``x``.
    x
        The points to decode, ``(n, ...)`` on the generator's device.
    n_clusters
        K, the number of one-hot modes (and of restarts).
    n_latent
        Dimension of ``zn``.
    sigma
        Standard deviation of the initial ``zn`` (the prior's, 0.1 in the paper).
    lam
        Weight of ``||zn||_2^2``.
    n_steps
        Adam iterations per restart (the paper: 5,000).
    lr
        Adam learning rate.
    clip
        ``zn`` is projected onto ``[-clip, clip]`` after each step (the paper: 0.6).
    chunk_size
        Points per batch (each brings K restarts).
    noise_generator
        Random generator (on the device of ``x``) for the initial ``zn``.

    Returns
    -------
    :class:`BackpropResult`.
    """
    n_clusters = check_positive_int(n_clusters, "n_clusters")
    n_latent = check_positive_int(n_latent, "n_latent")
    n_steps = check_positive_int(n_steps, "n_steps")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    for name, value in (("sigma", sigma), ("lam", lam), ("lr", lr), ("clip", clip)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    if lr == 0 or clip == 0:
        raise ValueError("lr and clip must be > 0.")
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] == 0:
        raise TypeError("x must be a non-empty torch tensor with one row per point.")
    device = x.device
    was_training = generator.training
    flags = [p.requires_grad for p in generator.parameters()]
    generator.eval()
    for p in generator.parameters():
        p.requires_grad_(False)
    eye = torch.eye(n_clusters, device=device, dtype=x.dtype)
    best_loss, best_zn, best_k, all_loss = [], [], [], []
    try:
        for start in range(0, x.shape[0], chunk_size):
            target = x[start : start + chunk_size]
            m = target.shape[0]
            # row r = point (r // K), restart (r % K)
            rep = target.repeat_interleave(n_clusters, dim=0)
            zc = eye.repeat(m, 1)
            zn = (
                torch.randn(m * n_clusters, n_latent, generator=noise_generator, device=device).to(
                    x.dtype
                )
                * sigma
            )
            zn = zn.clamp_(-clip, clip).requires_grad_(True)
            opt = torch.optim.Adam([zn], lr=lr)
            for _ in range(n_steps):
                loss = _objective(generator, zn, zc, rep, lam).sum()
                (grad,) = torch.autograd.grad(loss, zn)
                zn.grad = grad
                opt.step()
                with torch.no_grad():
                    zn.clamp_(-clip, clip)
            with torch.no_grad():
                final = _objective(generator, zn, zc, rep, lam).view(m, n_clusters)
                k = final.argmin(dim=1)
                rows = torch.arange(m, device=device) * n_clusters + k
                best_zn.append(zn.detach()[rows].cpu())
                best_k.append(k.cpu())
                best_loss.append(final.gather(1, k[:, None]).squeeze(1).cpu())
                all_loss.append(final.cpu())
    finally:
        for p, flag in zip(generator.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        generator.train(was_training)
    zn_all = torch.cat(best_zn)
    k_all = torch.cat(best_k)
    z = torch.cat([zn_all, torch.eye(n_clusters, dtype=zn_all.dtype)[k_all]], dim=1)
    return BackpropResult(
        z=z, zn=zn_all, k=k_all, loss=torch.cat(best_loss), restart_loss=torch.cat(all_loss)
    )
