"""The optimisation steps of one generator iteration, one class per way of computing them.

A step object owns the optimisers of the critic and of the generator / encoder pair and knows
how to compute their gradients; :func:`~scgan_cluster.train.train_clustergan` draws the data
and latent codes, calls the step object and keeps the history. Three implementations, with the
same numbers up to float rounding:

* :class:`AutogradStep`: torch autograd for any networks (convolutions, batch-norm), the
  gradient penalty's input gradient by double backward or written out for piecewise-linear
  critics, ``torch.optim.Adam`` per network.
* :class:`ManualStep`: gradients written out as matrix products
  (:class:`~scgan_cluster.train._manual.ManualSteps`) for fully connected critics and
  generators, written into the parameters' ``.grad`` for ``torch.optim.Adam``; the
  generator / encoder step falls back to autograd when the encoder is no such chain.
* :class:`FlatStep`: the same hand-written gradients on parameters kept in one flat buffer per
  optimiser (:class:`~scgan_cluster.train._flat.FlatAdam`), optionally through
  ``torch.compile``. The loop's default for fully connected networks.

:func:`make_step` picks one from the loop's ``gradients``, ``penalty``, ``precision`` and
``compile`` settings.
"""

from __future__ import annotations

import contextlib
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from ._config import TrainConfig
from ._flat import FlatAdam
from ._losses import (
    batch_mean,
    generator_encoder_loss,
    penalty_from_gradient,
    reconstruction_loss,
)
from ._manual import ManualSteps, chain_parameters, compiled_steps, mlp_chain
from ._penalty import explicit_input_gradient, penalty_layers

__all__ = [
    "AutogradStep",
    "FlatStep",
    "ManualStep",
    "TrainStep",
    "has_batch_norm",
    "make_step",
]


def has_batch_norm(module: nn.Module) -> bool:
    """Whether ``module`` contains a batch-norm layer (whose output depends on the whole batch).

    Parameters
    ----------
    module
        Any torch module.
    """
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def _float_outputs(fn: Callable, enabled: bool) -> Callable:
    """``fn`` with its tensor outputs cast to float32 (``fn`` itself when not ``enabled``).

    Under bf16 autocast the networks return bfloat16; the losses are computed from float32.
    """
    if not enabled:
        return fn

    def call(*args):
        out = fn(*args)
        if isinstance(out, tuple):
            return tuple(o.float() for o in out)
        return out.float()

    return call


def _device_of(module: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return next(module.parameters()).device


def _unstack_critic_batches(
    z: torch.Tensor,
) -> tuple[tuple[int, ...], int, int, int, torch.Tensor]:
    """Shapes of the critic steps' latent codes and all of them as one batch per replica.

    ``z`` is ``(n_critic,) + lead + (batch, zdim)``; returns ``lead``, ``n_critic``, ``batch``,
    the dimension of the batch axis in ``lead + (batch, ...)`` and ``z`` as
    ``lead + (n_critic * batch, zdim)``.
    """
    nc, lead, batch, zdim = z.shape[0], tuple(z.shape[1:-2]), z.shape[-2], z.shape[-1]
    nl = len(lead)
    return lead, nc, batch, nl, z.movedim(0, nl).reshape(*lead, nc * batch, zdim)


class TrainStep(ABC):
    """One generator iteration of ClusterGAN: ``n_critic`` critic updates, then one G / E update.

    Tensors follow the training loop's layout: ``lead`` is empty for one model and ``(R,)`` for
    an ensemble of R (modules with an ``n_runs`` attribute, see
    :func:`scgan_cluster.nn.stack_ensemble`). A step object may hold resources (flat parameter
    buffers) until :meth:`close`; it is also a context manager that closes on exit.

    Parameters
    ----------
    config
        The optimisation settings (learning rate, Adam's betas, loss weights).
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    @abstractmethod
    def critic_steps(
        self, real: torch.Tensor, z: torch.Tensor, eps: torch.Tensor, totals: torch.Tensor
    ) -> None:
        """Update the critic once per critic batch, the generator fixed.

        Parameters
        ----------
        real
            ``lead + (n_critic, batch) + sample_shape`` real samples (float32).
        z
            ``(n_critic,) + lead + (batch, zdim)`` latent codes of the generated samples.
        eps
            ``(n_critic,) + lead + (batch,) + (1,) * len(sample_shape)`` interpolation weights
            of the gradient penalty.
        totals
            ``(3,) + lead``: each step's critic loss, Wasserstein estimate and gradient penalty
            are added to it in place, one step after the other.
        """

    @abstractmethod
    def generator_step(
        self,
        z: torch.Tensor,
        zn: torch.Tensor,
        k: torch.Tensor,
        real: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Update the generator and the encoder jointly, the critic fixed.

        Parameters
        ----------
        z
            ``lead + (batch, zdim)`` latent codes.
        zn, k
            Their continuous part and cluster indices.
        real
            ``lead + (batch,) + sample_shape`` real samples for the reconstruction term of
            ``config.beta_r``, or ``None`` (no such term).

        Returns
        -------
        The adversarial term ``-E D(G(z))``, the zn and zc terms, and the reconstruction term
        (``None`` without ``real``), each of shape ``lead``, detached, before their weights.
        """

    @abstractmethod
    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every optimiser (the loop's ``config.lr_final`` schedule)."""

    @abstractmethod
    def close(self) -> None:
        """Hand the networks back for use outside training (the loop calls this when it ends)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The optimisers' state (the networks' weights are the modules' own ``state_dict``)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; call it after the networks' weights are loaded."""

    def __enter__(self) -> TrainStep:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AutogradStep(TrainStep):
    """Both steps with torch autograd and ``torch.optim.Adam``; any networks.

    The critic's fakes for all ``n_critic`` steps come from one forward pass of the generator,
    unless the generator has batch-norm (then one pass per batch, each with its own statistics).
    With ``precision="bf16"`` each step's forward passes and penalty run under
    ``torch.autocast(dtype=torch.bfloat16)`` (one region per optimiser step, so each weight is
    cast once per step and no cast outlives the update of its weight) and the backward passes
    outside it; the losses are computed in float32.

    Parameters
    ----------
    generator, encoder, critic
        G, E (returning ``(zn_hat, zc_logits)``) and D.
    config
        The optimisation settings.
    penalty
        ``"autograd"``: the penalty's input gradient by ``torch.autograd.grad`` and a double
        backward; ``"explicit"`` or ``"auto"``: written out where the critic defines
        ``penalty_layers()`` (see :func:`~scgan_cluster.train.penalty_layers`), else autograd.
    joint_critic_batch
        Evaluate the critic on real and generated samples in one forward pass; ``None``: exactly
        when the critic has no batch-norm.
    precision
        ``"fp32"`` or ``"bf16"``.
    device
        The networks' device (``None``: the critic's parameters' device); chooses the fused
        Adam kernel on CPU and CUDA, the foreach one elsewhere, and the autocast device.
    """

    def __init__(
        self,
        generator: nn.Module,
        encoder: nn.Module,
        critic: nn.Module,
        config: TrainConfig,
        *,
        penalty: Literal["auto", "explicit", "autograd"] = "auto",
        joint_critic_batch: bool | None = None,
        precision: Literal["fp32", "bf16"] = "fp32",
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(config)
        device = _device_of(critic, device)
        self.generator, self.encoder, self.critic = generator, encoder, critic
        self.layers = None if penalty == "autograd" else penalty_layers(critic)
        self.joint_critic_batch = (
            not has_batch_norm(critic) if joint_critic_batch is None else joint_critic_batch
        )
        self.batch_fakes = not has_batch_norm(generator)
        low = precision == "bf16"
        self.autocast = (
            functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)
            if low
            else contextlib.nullcontext
        )
        self.run_g, self.run_e, self.run_d, self.input_gradient = (
            _float_outputs(fn, low) for fn in (generator, encoder, critic, explicit_input_gradient)
        )
        fused = device.type in ("cpu", "cuda")
        adam = {"lr": config.lr, "betas": config.betas, "fused" if fused else "foreach": True}
        self.opt_d = torch.optim.Adam(critic.parameters(), **adam)
        self.opt_ge = torch.optim.Adam([*generator.parameters(), *encoder.parameters()], **adam)

    def critic_steps(
        self, real: torch.Tensor, z: torch.Tensor, eps: torch.Tensor, totals: torch.Tensor
    ) -> None:
        """See :meth:`TrainStep.critic_steps`."""
        lead, nc, batch, nl, z_all = _unstack_critic_batches(z)
        _set_requires_grad(self.critic, True)
        with torch.no_grad(), self.autocast():
            if self.batch_fakes:
                fakes = self.run_g(z_all)
                fakes = fakes.view(*lead, nc, batch, *fakes.shape[nl + 1 :])
            else:
                fakes = torch.stack([self.run_g(z[j]) for j in range(nc)], dim=nl)
        explicit = self.layers is not None
        for j in range(nc):
            with self.autocast():
                real_j = real.select(nl, j)
                fake_j = fakes.select(nl, j)
                eps_j = eps[j]
                x_hat = (eps_j * real_j + (1.0 - eps_j) * fake_j).requires_grad_(not explicit)
                if self.joint_critic_batch:
                    d_rf = self.run_d(torch.cat([real_j, fake_j], dim=nl))
                    d_real, d_fake = d_rf.split(batch, dim=nl)
                else:
                    d_real, d_fake = self.run_d(real_j), self.run_d(fake_j)
                if explicit:
                    grad = self.input_gradient(self.layers, x_hat.detach())
                else:
                    d_hat = self.run_d(x_hat)
                    (grad,) = torch.autograd.grad(d_hat.sum(), x_hat, create_graph=True)
                gp = penalty_from_gradient(grad, nl)
                wdist = batch_mean(d_real) - batch_mean(d_fake)
                loss = self.config.gp_weight * gp - wdist  # per replica (lead shape)
            self.opt_d.zero_grad(set_to_none=True)
            loss.sum().backward()
            self.opt_d.step()
            totals += torch.stack([loss.detach(), wdist.detach(), gp.detach()])

    def generator_step(
        self,
        z: torch.Tensor,
        zn: torch.Tensor,
        k: torch.Tensor,
        real: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """See :meth:`TrainStep.generator_step`."""
        cfg = self.config
        _set_requires_grad(self.critic, False)
        with self.autocast():
            fake = self.run_g(z)
            zn_hat, zc_logits = self.run_e(fake)
            loss, adv, zn_loss, zc_loss = generator_encoder_loss(
                self.run_d, fake, zn, k, zn_hat, zc_logits, cfg.beta_n, cfg.beta_c
            )
            recon = None
            if real is not None:
                recon = reconstruction_loss(self.run_g, self.run_e, real, z.dim() - 2)
                loss = loss + cfg.beta_r * recon
        self.opt_ge.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.opt_ge.step()
        return (
            adv.detach(),
            zn_loss.detach(),
            zc_loss.detach(),
            None if recon is None else recon.detach(),
        )

    def set_lr(self, lr: float) -> None:
        """See :meth:`TrainStep.set_lr`."""
        for opt in (self.opt_d, self.opt_ge):
            for group in opt.param_groups:
                group["lr"] = lr

    def close(self) -> None:
        """Let the critic's parameters require gradients again (the G / E step switches them off)."""
        _set_requires_grad(self.critic, True)

    def state_dict(self) -> dict[str, Any]:
        """See :meth:`TrainStep.state_dict`."""
        return {"d": self.opt_d.state_dict(), "ge": self.opt_ge.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """See :meth:`TrainStep.load_state_dict`."""
        self.opt_d.load_state_dict(state["d"])
        self.opt_ge.load_state_dict(state["ge"])


class ManualStep(AutogradStep):
    """Hand-written gradients into the parameters' ``.grad``, ``torch.optim.Adam`` per network.

    The critic step is written out as matrix products
    (:meth:`~scgan_cluster.train._manual.ManualSteps.critic_step`: one forward pass over
    ``[real, fake]``, the penalty's gradient without a double backward), and so is the
    generator / encoder step when the encoder is a chain too
    (:meth:`~scgan_cluster.train._manual.ManualSteps.generator_step`); otherwise that step is
    :class:`AutogradStep`'s. Used by :func:`make_step` for such networks when :class:`FlatStep`
    cannot take them (an encoder with batch-norm, parameters outside the chains).

    Parameters
    ----------
    generator, critic
        Fully connected chains (see :func:`~scgan_cluster.train._manual.mlp_chain`), without
        batch-norm.
    encoder
        E; a chain for the hand-written G / E step.
    config
        The optimisation settings.
    precision
        ``"bf16"``: the hand-written steps run their matrix products in bfloat16 from bfloat16
        copies of the weights made once per step; an autograd G / E step runs under autocast.
    device
        As in :class:`AutogradStep`.
    """

    def __init__(
        self,
        generator: nn.Module,
        encoder: nn.Module,
        critic: nn.Module,
        config: TrainConfig,
        *,
        precision: Literal["fp32", "bf16"] = "fp32",
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(
            generator,
            encoder,
            critic,
            config,
            penalty="explicit",
            joint_critic_batch=True,
            precision=precision,
            device=device,
        )
        self.steps = ManualSteps(
            generator, encoder, critic, dtype=torch.bfloat16 if precision == "bf16" else None
        )
        if self.steps.g_layers is None:
            raise ValueError("ManualStep needs a generator made of linear layers and activations.")

    def critic_steps(
        self, real: torch.Tensor, z: torch.Tensor, eps: torch.Tensor, totals: torch.Tensor
    ) -> None:
        """See :meth:`TrainStep.critic_steps`."""
        steps = self.steps
        lead, nc, batch, nl, z_all = _unstack_critic_batches(z)
        steps.refresh_generator()
        if steps.dtype is not None:
            real = real.to(steps.dtype)
        fakes = steps.generate(z_all).view(*lead, nc, batch, *real.shape[nl + 2 :])
        for j in range(nc):
            loss, wdist, gp = steps.critic_step(
                real.select(nl, j), fakes.select(nl, j), eps[j], self.config.gp_weight
            )
            self.opt_d.step()
            totals += torch.stack([loss, wdist, gp])

    def generator_step(
        self,
        z: torch.Tensor,
        zn: torch.Tensor,
        k: torch.Tensor,
        real: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """See :meth:`TrainStep.generator_step`."""
        if not self.steps.handles_generator:
            return super().generator_step(z, zn, k, real)
        cfg = self.config
        adv, zn_loss, zc_loss, *recon = self.steps.generator_step(
            z, zn, k, cfg.beta_n, cfg.beta_c, real, cfg.beta_r
        )
        self.opt_ge.step()
        return adv, zn_loss, zc_loss, recon[0] if recon else None


class FlatStep(TrainStep):
    """Hand-written gradients of fully connected networks on flat parameter buffers.

    The critic's parameters and G's then E's are each moved into one flat buffer (the
    parameters become views of it until :meth:`close`), the hand-written steps
    (:meth:`~scgan_cluster.train._manual.ManualSteps.critic_flat`,
    :meth:`~scgan_cluster.train._manual.ManualSteps.generator_flat`) return one flat gradient,
    and each Adam update is one fused kernel call on one tensor
    (:class:`~scgan_cluster.train._flat.FlatAdam`, the same update as ``torch.optim.Adam``).
    Without ``compile`` the gradients are written into preallocated flat buffers.

    Parameters
    ----------
    generator, encoder, critic
        Fully connected chains without batch-norm (see
        :func:`~scgan_cluster.train._manual.mlp_chain`) holding no parameters outside the
        chains.
    config
        The optimisation settings.
    precision
        ``"bf16"``: the matrix products run in bfloat16. Each buffer is converted once while its
        values are unchanged: G / E once per iteration (the critic's fakes and the G / E step
        use the same weights), D once per update (its last conversion serves the G / E step and
        the next iteration's first critic step).
    compile
        Run the generation of the critic's fakes and both steps through ``torch.compile``
        (inductor), one compiled set per network structure and process
        (:func:`~scgan_cluster.train._manual.compiled_steps`).
    device
        As in :class:`AutogradStep` (fused Adam on CPU and CUDA).
    """

    def __init__(
        self,
        generator: nn.Module,
        encoder: nn.Module,
        critic: nn.Module,
        config: TrainConfig,
        *,
        precision: Literal["fp32", "bf16"] = "fp32",
        compile: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(config)
        if not _all_in_chains(generator, encoder, critic):
            raise ValueError(
                "FlatStep needs fully connected networks without batch-norm whose parameters "
                "are all in their chains."
            )
        self.steps = steps = ManualSteps(
            generator, encoder, critic, dtype=torch.bfloat16 if precision == "bf16" else None
        )
        flat = {
            "lr": config.lr,
            "betas": config.betas,
            "fused": _device_of(critic, device).type in ("cpu", "cuda"),
        }
        self.flat_d = FlatAdam(chain_parameters(steps.d_layers), **flat)
        try:
            self.flat_ge = FlatAdam(
                chain_parameters(steps.g_layers) + chain_parameters(steps.e_layers), **flat
            )
        except Exception:
            self.flat_d.release()
            raise
        if compile:
            self._generate, self._critic, self._generator = compiled_steps(steps)
        else:
            self._generate, self._critic, self._generator = (
                steps.generate_flat,
                steps.critic_flat,
                steps.generator_flat,
            )
        # eager: the gradients are written into preallocated flat buffers; compiled: returned
        self._out_d = {} if compile else {"out": torch.empty_like(self.flat_d.data)}
        self._out_ge = {} if compile else {"out": torch.empty_like(self.flat_ge.data)}
        # the buffers in the compute dtype (None: no conversion), each converted in place, so
        # that a captured iteration (the loop's ``cuda_graph``) reads and writes the same storage
        self._d_cast = steps.cast(self.flat_d.data)
        self._ge_cast = steps.cast(self.flat_ge.data)
        self._ge_cast_current = False  # whether _ge_cast holds G / E's current values

    def _ge_cast_now(self) -> torch.Tensor | None:
        """G / E's buffer in the compute dtype, converted once while its values are unchanged."""
        if not self._ge_cast_current:
            _recast(self._ge_cast, self.flat_ge.data)
            self._ge_cast_current = True
        return self._ge_cast

    def critic_steps(
        self, real: torch.Tensor, z: torch.Tensor, eps: torch.Tensor, totals: torch.Tensor
    ) -> None:
        """See :meth:`TrainStep.critic_steps`."""
        steps, flat_d = self.steps, self.flat_d
        lead, nc, batch, nl, z_all = _unstack_critic_batches(z)
        if steps.dtype is not None:
            real = real.to(steps.dtype)
        fakes = self._generate(self.flat_ge.data, z_all, self._ge_cast_now())
        fakes = fakes.view(*lead, nc, batch, *real.shape[nl + 2 :])
        for j in range(nc):
            grad, loss, wdist, gp = self._critic(
                flat_d.data,
                real.select(nl, j),
                fakes.select(nl, j),
                eps[j],
                self.config.gp_weight,
                cast=self._d_cast,
                **self._out_d,
            )
            flat_d.step(grad)
            _recast(self._d_cast, flat_d.data)
            totals += torch.stack([loss, wdist, gp])

    def generator_step(
        self,
        z: torch.Tensor,
        zn: torch.Tensor,
        k: torch.Tensor,
        real: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """See :meth:`TrainStep.generator_step`."""
        cfg = self.config
        grad, adv, zn_loss, zc_loss, *recon = self._generator(
            self.flat_ge.data,
            self.flat_d.data,
            z,
            zn,
            k,
            cfg.beta_n,
            cfg.beta_c,
            ge_cast=self._ge_cast_now(),
            d_cast=self._d_cast,
            real=real,
            beta_r=cfg.beta_r,
            **self._out_ge,
        )
        self.flat_ge.step(grad)
        self._ge_cast_current = False
        return adv, zn_loss, zc_loss, recon[0] if recon else None

    def set_lr(self, lr: float) -> None:
        """See :meth:`TrainStep.set_lr`."""
        self.flat_d.lr = self.flat_ge.lr = float(lr)

    def close(self) -> None:
        """Give every parameter its own storage again (with its current values)."""
        self.flat_d.release()
        self.flat_ge.release()

    def state_dict(self) -> dict[str, Any]:
        """See :meth:`TrainStep.state_dict`."""
        return {"d": self.flat_d.state_dict(), "ge": self.flat_ge.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """See :meth:`TrainStep.load_state_dict`; the weights' low-precision copies are redone."""
        self.flat_d.load_state_dict(state["d"])
        self.flat_ge.load_state_dict(state["ge"])
        _recast(self._d_cast, self.flat_d.data)
        self._ge_cast_current = False


def _recast(cast: torch.Tensor | None, flat: torch.Tensor) -> None:
    """Refresh ``cast``, a low-precision copy of ``flat``, in place (nothing when ``None``)."""
    if cast is not None:
        cast.copy_(flat)


def _all_in_chains(generator: nn.Module, encoder: nn.Module, critic: nn.Module) -> bool:
    """Whether G, E and D are chains (:func:`~scgan_cluster.train._manual.mlp_chain`) holding all their parameters."""
    chains = [
        mlp_chain(module, role)
        for module, role in ((generator, "generator"), (encoder, "encoder"), (critic, "critic"))
    ]
    if any(chain is None for chain in chains):
        return False
    g, e, d = (chain_parameters(chain) for chain in chains)
    ids = (
        {id(p) for p in critic.parameters()},
        {id(p) for m in (generator, encoder) for p in m.parameters()},
    )
    return ids == ({id(p) for p in d}, {id(p) for p in g + e})


def make_step(
    generator: nn.Module,
    encoder: nn.Module,
    critic: nn.Module,
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
    joint_critic_batch: bool | None = None,
    penalty: Literal["auto", "explicit", "autograd"] = "auto",
    gradients: Literal["auto", "manual", "autograd"] = "auto",
    precision: Literal["fp32", "bf16"] = "fp32",
    compile: bool = False,
) -> TrainStep:
    """The step implementation for these networks and settings (validated here).

    Hand-written gradients (``gradients`` not ``"autograd"``) need ``penalty`` not
    ``"autograd"``, ``joint_critic_batch`` not ``False``, a generator without batch-norm and a
    fully connected critic and generator (:func:`~scgan_cluster.train._manual.mlp_chain`). With
    a fully connected encoder too and every parameter in the chains: :class:`FlatStep`; else
    :class:`ManualStep`; without hand-written gradients: :class:`AutogradStep`.

    Parameters
    ----------
    generator, encoder, critic
        The networks.
    config
        The optimisation settings.
    device, joint_critic_batch, penalty, gradients, precision, compile
        As in :func:`~scgan_cluster.train.train_clustergan`.

    Raises
    ------
    ValueError
        For an unknown option, or one these networks do not allow.
    TypeError
        When ``compile`` is not a bool.
    """
    device = _device_of(critic, device)
    if joint_critic_batch is None:
        joint_critic_batch = not has_batch_norm(critic)
    if penalty not in ("auto", "explicit", "autograd"):
        raise ValueError(f"penalty must be 'auto', 'explicit' or 'autograd', got {penalty!r}.")
    if penalty == "explicit" and penalty_layers(critic) is None:
        raise ValueError(
            "penalty='explicit' needs a piecewise-linear critic defining penalty_layers() "
            "(Linear / Conv2d / (Leaky)ReLU / Flatten, no batch-norm); use penalty='auto'."
        )
    if gradients not in ("auto", "manual", "autograd"):
        raise ValueError(f"gradients must be 'auto', 'manual' or 'autograd', got {gradients!r}.")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}.")
    manual_d = (
        gradients != "autograd"
        and penalty != "autograd"
        and joint_critic_batch
        and not has_batch_norm(generator)
        and mlp_chain(critic, "critic") is not None
        and mlp_chain(generator, "generator") is not None
    )
    manual_g = manual_d and mlp_chain(encoder, "encoder") is not None
    if not isinstance(compile, bool):
        raise TypeError(f"compile must be True or False, got {compile!r}.")
    if compile and not manual_g:
        raise ValueError(
            "compile=True needs the hand-written gradient path (fully connected networks without "
            "batch-norm, gradients not 'autograd')."
        )
    if gradients == "manual" and not manual_g:
        raise ValueError(
            "gradients='manual' needs fully connected networks without batch-norm (the 'mlp' "
            "architecture or its ensembles), penalty other than 'autograd' and "
            "joint_critic_batch not False; use gradients='auto' for other networks."
        )
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise ValueError(f"precision='bf16' needs a CPU or CUDA device, got {device.type!r}.")
    options = {"precision": precision, "device": device}
    if manual_g and _all_in_chains(generator, encoder, critic):
        return FlatStep(generator, encoder, critic, config, compile=compile, **options)
    if compile:
        raise ValueError("compile=True needs networks whose parameters are all in their chains.")
    if manual_d:
        return ManualStep(generator, encoder, critic, config, **options)
    return AutogradStep(
        generator,
        encoder,
        critic,
        config,
        penalty=penalty,
        joint_critic_batch=joint_critic_batch,
        **options,
    )
