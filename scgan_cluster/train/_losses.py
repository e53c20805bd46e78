"""Losses of ClusterGAN: the WGAN-GP critic objective and the generator/encoder objective (eq. 1)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "batch_mean",
    "critic_loss",
    "generator_encoder_loss",
    "gradient_penalty",
    "penalty_at",
    "penalty_from_gradient",
    "reconstruction_loss",
]


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP penalty E[(||grad_x D(x_hat)||_2 - 1)^2] at x_hat = eps * real + (1 - eps) * fake.

    Parameters
    ----------
    critic
        D.
    real
        A batch of data.
    fake
        A batch of generated data of the same shape.
    eps
        One U(0, 1) draw per sample, shaped to broadcast against ``real``.
    """
    x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    return penalty_at(critic(x_hat), x_hat)


def penalty_at(d_hat: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """The WGAN-GP penalty from critic outputs ``d_hat = D(x_hat)`` (graph kept for double backward).

    Parameters
    ----------
    d_hat
        Critic outputs of shape ``lead + (batch,)``: ``lead`` is empty for one model and ``(R,)``
        for an ensemble of R models (:mod:`scgan_cluster.nn`), whose penalties are summed.
    x_hat
        The points (``requires_grad=True``) at which ``d_hat`` was computed.
    """
    (grad,) = torch.autograd.grad(d_hat.sum(), x_hat, create_graph=True)
    return penalty_from_gradient(grad, d_hat.dim() - 1)


def penalty_from_gradient(grad: torch.Tensor, n_lead: int) -> torch.Tensor:
    """E[(||grad||_2 - 1)^2] over the batch, from the critic's input gradient at x_hat.

    Parameters
    ----------
    grad
        ``lead + (batch,) + sample_shape``: the gradient of D at each x_hat.
    n_lead
        Number of leading replica dimensions (0 for one model, 1 for an ensemble).
    """
    norm = grad.flatten(n_lead + 1).norm(2, dim=-1)
    return batch_mean((norm - 1.0) ** 2)


def batch_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean over the batch (last) dimension: one value per replica (a scalar for one model).

    Parameters
    ----------
    values
        Per-sample values of shape ``lead + (batch,)``.
    """
    return values.mean(-1)


def critic_loss(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor, gp_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Critic objective ``D(fake) - D(real) + gp_weight * GP`` (minimised).

    Parameters
    ----------
    critic
        D.
    real
        A batch of data.
    fake
        A batch of generated data.
    eps
        Interpolation weights of the penalty (see :func:`gradient_penalty`).
    gp_weight
        Penalty coefficient (the paper: 10).

    Returns
    -------
    The loss, the Wasserstein estimate ``E D(real) - E D(fake)`` (detached) and the penalty
    (detached). For an ensemble critic (outputs ``(R, batch)``) each has one value per replica;
    backpropagate their sum.
    """
    wasserstein = batch_mean(critic(real)) - batch_mean(critic(fake))
    gp = gradient_penalty(critic, real, fake, eps)
    return -wasserstein + gp_weight * gp, wasserstein.detach(), gp.detach()


def generator_encoder_loss(
    critic: nn.Module,
    fake: torch.Tensor,
    zn: torch.Tensor,
    k: torch.Tensor,
    zn_hat: torch.Tensor,
    zc_logits: torch.Tensor,
    beta_n: float,
    beta_c: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Joint objective of G and E (Algorithm 2 of the paper).

    ``-E D(G(z)) + beta_n * E ||zn - E(G(z))_n||_2^2 + beta_c * E H(zc, softmax(E(G(z))_c))``,
    where the squared norm sums over the zn dimensions and every expectation is a batch mean.

    Parameters
    ----------
    critic
        D.
    fake
        ``G(z)``.
    zn
        The continuous part of z.
    k
        The cluster index of each z (zc = one-hot of k).
    zn_hat
        The encoder's zn of ``fake``.
    zc_logits
        The encoder's zc logits of ``fake``.
    beta_n
        Weight of the zn term.
    beta_c
        Weight of the zc term.

    Returns
    -------
    The total loss and its three parts (detached): adversarial, zn and zc terms. For an ensemble
    (a leading replica dimension on every tensor) each has one value per replica; backpropagate
    the sum of the total.
    """
    adversarial = -batch_mean(critic(fake))
    zn_loss = batch_mean((zn - zn_hat).pow(2).sum(dim=-1))
    # per-sample cross-entropy over any leading replica dimensions, then the batch mean
    ce = F.cross_entropy(zc_logits.flatten(0, -2), k.flatten(), reduction="none")
    zc_loss = batch_mean(ce.view(k.shape))
    total = adversarial + beta_n * zn_loss + beta_c * zc_loss
    return total, adversarial.detach(), zn_loss.detach(), zc_loss.detach()


def reconstruction_loss(
    generator: Callable[[torch.Tensor], torch.Tensor],
    encoder: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    real: torch.Tensor,
    n_lead: int = 0,
) -> torch.Tensor:
    """Reconstruction error of real samples through the encoder and the generator (not in the paper).

    ``E_x ||x - G([zn_hat, softmax(zc_logits)])||_2^2`` with ``(zn_hat, zc_logits) = E(x)``: the
    encoder's code of a real sample is fed to G in the layout of the prior's z (zn joined with
    a point of the simplex in place of the one-hot zc). The squared norm sums over all features
    of a sample (as the zn term of :func:`generator_encoder_loss` sums over zn's dimensions) and
    the expectation is the batch mean. It trains E on real data, which the paper's objective
    never shows it (E only sees G's samples there).

    Parameters
    ----------
    generator
        G.
    encoder
        E, returning ``(zn_hat, zc_logits)``.
    real
        Real samples, ``lead + (batch,) + sample_shape``.
    n_lead
        Number of leading replica dimensions (0 for one model, 1 for an ensemble).

    Returns
    -------
    One value per replica (a scalar for one model), with its graph (backpropagate the sum).
    """
    zn_hat, zc_logits = encoder(real)
    z_hat = torch.cat([zn_hat, torch.softmax(zc_logits, dim=-1)], dim=-1)
    rec = generator(z_hat)
    err = (real - rec).pow(2).flatten(n_lead + 1).sum(-1)
    return batch_mean(err)
