"""The ClusterGAN training loop. It sees only torch modules and tensors, never AnnData."""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import nn
from tqdm import tqdm

from scgan_cluster._settings import logger, settings
from scgan_cluster._validation import check_positive_int
from scgan_cluster.nn import MixedPrior

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
    "PRIOR_FLOOR",
    "PRIOR_MOMENTUM",
    "PRIOR_SAMPLE",
    "PRIOR_START",
    "update_prior_weights",
    "BatchSource",
    "TrainConfig",
    "HISTORY_KEYS",
    "train_clustergan",
    "encode",
    "EpochSampler",
    "DrawStream",
    "has_batch_norm",
]

HISTORY_KEYS = (
    "iteration",
    "seconds",
    "critic_loss",
    "wasserstein",
    "gradient_penalty",
    "generator_loss",
    "zn_loss",
    "zc_loss",
    "reconstruction_loss",
)


PRIOR_START = 0.25
"""Fraction of the run after which a learned prior starts to be re-estimated."""
PRIOR_MOMENTUM = 0.5
"""Weight of the new estimate when the prior's cluster proportions are updated."""
PRIOR_FLOOR = 0.1
"""No cluster proportion of a learned prior falls below ``PRIOR_FLOOR / K``."""
PRIOR_SAMPLE = 2048
"""Real samples encoded for one estimate of the cluster proportions."""


@runtime_checkable
class BatchSource(Protocol):
    """What the loop needs of the data: its size and a way to fetch rows as a float tensor."""

    n_obs: int
    device: torch.device

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` (int64 tensor) as a float32 tensor on ``self.device``."""
        ...


@dataclass
class TrainConfig:
    """Optimisation settings; every default is the paper's (appendix 6.2), except ``max_iter``.

    ``log_every`` (generator iterations between history records) defaults to ``max_iter // 100``.

    ``prior_update_every`` (0: never, the paper's fixed uniform prior) re-estimates the cluster
    proportions of the prior's zc from the encoder every that many generator iterations, from
    ``PRIOR_START`` of the run on: the mean of softmax(zc_hat) over ``PRIOR_SAMPLE`` random real
    samples is mixed into the weights with momentum ``PRIOR_MOMENTUM``, and every weight is
    floored at ``prior_floor / K`` before renormalising (so no mode is switched off;
    ``prior_floor`` defaults to ``PRIOR_FLOOR``, 0.1). See :func:`update_prior_weights`.

    ``beta_r`` (0: the paper's objective) adds ``beta_r`` times a reconstruction term on real
    samples to the joint G / E objective: ``E_x ||x - G([zn_hat, softmax(zc_logits)])||^2``
    with ``(zn_hat, zc_logits) = E(x)``, the squared norm summed over features and the
    expectation a batch mean (:func:`~scgan_cluster.train._losses.reconstruction_loss`). Its
    real batch is the last critic batch of the same generator iteration (no extra draw, so the
    random streams are those of ``beta_r = 0``). The paper's encoder only ever sees generated
    samples; this term trains it on real ones too. Not in the paper.
    """

    max_iter: int = 8000
    batch_size: int = 64
    n_critic: int = 5
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    gp_weight: float = 10.0
    beta_n: float = 10.0
    beta_c: float = 10.0
    log_every: int | None = None
    prior_update_every: int = 0
    beta_r: float = 0.0
    prior_floor: float = PRIOR_FLOOR

    def __post_init__(self) -> None:
        for name in ("max_iter", "batch_size", "n_critic"):
            setattr(self, name, check_positive_int(getattr(self, name), name))
        for name in ("lr", "gp_weight", "beta_n", "beta_c", "beta_r"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
        if self.lr == 0:
            raise ValueError("lr must be > 0.")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}.")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.log_every is None:
            self.log_every = max(1, self.max_iter // 100)
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every!r}.")
        floor = self.prior_floor
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor <= 1:
            raise ValueError(f"prior_floor must be a number in [0, 1], got {floor!r}.")
        self.prior_floor = float(floor)
        if (
            isinstance(self.prior_update_every, bool)
            or not isinstance(self.prior_update_every, int)
            or self.prior_update_every < 0
        ):
            raise ValueError(
                f"prior_update_every must be an integer >= 0, got {self.prior_update_every!r}."
            )

    def to_dict(self) -> dict:
        """JSON-friendly dict of the settings."""
        d = asdict(self)
        d["betas"] = list(d["betas"])
        return d


class EpochSampler:
    """Minibatch indices without replacement within an epoch; a new permutation per epoch.

    A final partial batch of an epoch is dropped, so every batch has ``batch_size`` rows.
    """

    def __init__(self, n_obs: int, batch_size: int, generator: torch.Generator) -> None:
        if batch_size > n_obs:
            raise ValueError(
                f"batch_size={batch_size} is larger than the number of samples ({n_obs})."
            )
        self.n_obs = n_obs
        self.batch_size = batch_size
        self.generator = generator
        self._perm = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        if self._pos + self.batch_size > len(self._perm):
            self._perm = torch.randperm(self.n_obs, generator=self.generator)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx


def _set_training(modules: tuple[nn.Module, ...], training: bool) -> None:
    for module in modules:
        module.train(training)


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def has_batch_norm(module: nn.Module) -> bool:
    """Whether ``module`` contains a batch-norm layer (whose output depends on the whole batch).

    Parameters
    ----------
    module
        Any torch module.
    """
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


class DrawStream:
    """The random draws of the loop, sampled ``block`` generator iterations at a time.

    Per block of ``T`` iterations, in this order: ``T * n_critic`` minibatches of indices from an
    :class:`EpochSampler` on ``index_generator``; then, from ``noise_generator``, one prior draw
    of ``T * (n_critic + 1) * batch`` latent codes (``n_critic`` critic batches then the
    generator batch of each iteration) and ``T * n_critic * batch`` uniform interpolation weights.
    Sampling in blocks replaces dozens of small random-number calls per iteration by three.

    Parameters
    ----------
    prior
        The latent prior.
    n_obs
        Number of training samples.
    batch_size, n_critic
        As in :class:`TrainConfig`.
    noise_generator, index_generator
        As in :func:`train_clustergan`.
    block
        Generator iterations per block.
    """

    def __init__(
        self,
        prior: MixedPrior,
        n_obs: int,
        batch_size: int,
        n_critic: int,
        *,
        noise_generator: torch.Generator,
        index_generator: torch.Generator,
        block: int = 32,
    ) -> None:
        self.prior = prior
        self.batch = batch_size
        self.n_critic = n_critic
        self.noise_generator = noise_generator
        self.sampler = EpochSampler(n_obs, batch_size, index_generator)
        self.block = check_positive_int(block, "block")
        self.weights = prior.weights  # cluster proportions of zc (a learned prior updates them)

    def next_block(
        self, n_iter: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draws for ``n_iter`` iterations.

        Returns
        -------
        idx
            ``(n_iter, n_critic * batch)`` int64 row indices (CPU).
        z, zn, k
            ``(n_iter, n_critic + 1, batch, ...)`` latent codes, their continuous part, clusters.
        eps
            ``(n_iter, n_critic, batch)`` interpolation weights.
        """
        b, nc = self.batch, self.n_critic
        idx = torch.stack([next(self.sampler) for _ in range(n_iter * nc)]).view(n_iter, nc * b)
        z, zn, k = self.prior.sample(
            n_iter * (nc + 1) * b, generator=self.noise_generator, weights=self.weights
        )
        shape = (n_iter, nc + 1, b)
        eps = torch.rand(
            n_iter * nc * b, generator=self.noise_generator, device=self.prior.weights.device
        )
        return (
            idx,
            z.view(*shape, -1),
            zn.view(*shape, -1),
            k.view(shape),
            eps.view(n_iter, nc, b),
        )


@torch.no_grad()
def update_prior_weights(
    weights: torch.Tensor,
    encoder: nn.Module,
    source: BatchSource,
    generator: torch.Generator,
    *,
    n_runs: int | None = None,
    floor: float = PRIOR_FLOOR,
) -> None:
    """One re-estimate of a learned prior's cluster proportions, in place.

    ``weights`` (``(K,)``, or ``(R, K)`` for an ensemble of R encoders) becomes
    ``(1 - PRIOR_MOMENTUM) * weights + PRIOR_MOMENTUM * p``, floored at ``floor / K`` and
    renormalised, where ``p`` is the mean of softmax(zc_hat) over ``PRIOR_SAMPLE`` real samples
    drawn with ``generator``.

    Parameters
    ----------
    weights
        The proportions to update.
    encoder
        E (in training mode; it has no batch-norm when this is used by the loop, or its running
        statistics are not touched because the call runs under ``eval``).
    source
        The training data.
    generator
        CPU random generator choosing the samples.
    n_runs
        R for an ensemble encoder, else ``None``.
    floor
        Every proportion is floored at ``floor / K`` before renormalising, so it ends at least
        ``floor / (K (1 + floor))`` (``TrainConfig.prior_floor``).
    """
    m = min(PRIOR_SAMPLE, source.n_obs)
    idx = torch.randperm(source.n_obs, generator=generator)[:m]
    x = source.take(idx)
    if n_runs is not None:
        x = x.unsqueeze(0).expand(n_runs, *x.shape)
    was_training = encoder.training
    encoder.eval()
    _, logits = encoder(x)
    encoder.train(was_training)
    p = torch.softmax(logits.float(), dim=-1).mean(-2)
    k = weights.shape[-1]
    new = ((1.0 - PRIOR_MOMENTUM) * weights + PRIOR_MOMENTUM * p).clamp_min(floor / k)
    weights.copy_(new / new.sum(-1, keepdim=True))


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


def _as_list(value, n: int, name: str) -> list:
    if isinstance(value, torch.Generator):
        value = [value]
    value = list(value)
    if len(value) != n:
        raise ValueError(
            f"{name}: an ensemble of {n} models needs {n} generators (one per replica), got {len(value)}."
        )
    return value


def train_clustergan(
    generator: nn.Module,
    encoder: nn.Module,
    critic: nn.Module,
    prior: MixedPrior,
    source: BatchSource,
    config: TrainConfig,
    *,
    noise_generator: torch.Generator | Sequence[torch.Generator],
    index_generator: torch.Generator | Sequence[torch.Generator],
    progress: bool | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    joint_critic_batch: bool | None = None,
    penalty: Literal["auto", "explicit", "autograd"] = "auto",
    block: int = 32,
    gradients: Literal["auto", "manual", "autograd"] = "auto",
    precision: Literal["fp32", "bf16"] = "fp32",
    flat_params: bool = True,
    compile: bool = False,
) -> dict[str, list[float]] | list[dict[str, list[float]]]:
    """Train ClusterGAN with WGAN-GP (Algorithm 2 of the paper, ``n_critic`` critic steps per G/E step).

    Parameters
    ----------
    generator
        G, already on ``source.device``.
    encoder
        E, returning ``(zn_hat, zc_logits)``.
    critic
        D.
    prior
        The latent prior, on the same device.
    source
        The training data (see :class:`BatchSource`).
    config
        Optimisation settings.
    noise_generator
        Random generator on ``source.device`` for the prior and the penalty's interpolation weights.
        For an ensemble (modules with an ``n_runs`` attribute, see
        :func:`scgan_cluster.nn.stack_ensemble`): one generator per replica.
    index_generator
        CPU random generator for the minibatch order (for an ensemble: one per replica).
    progress
        Show a tqdm bar; ``None`` follows :attr:`scgan_cluster.settings.progress_bar`.
    callback
        Called as ``callback(iteration, record)`` after each history record (every
        ``config.log_every`` iterations), e.g. to evaluate or checkpoint; the networks are put
        back in training mode afterwards. For an ensemble each value of ``record`` is a list with
        one entry per replica.
    joint_critic_batch
        Evaluate the critic on real and generated samples in one forward pass (concatenated
        batch) instead of two. Mathematically the same for critics without batch-norm; ``None``
        (default) does it exactly when the critic has no batch-norm layer, whose statistics would
        otherwise mix the two batches.
    penalty
        How the gradient penalty's input gradient is computed: ``"autograd"`` by
        ``torch.autograd.grad(create_graph=True)`` and a double backward (any critic);
        ``"explicit"`` by writing out the gradient of a piecewise-linear critic (one that defines
        ``penalty_layers()``, see :func:`penalty_layers`), the same numbers with a single
        backward pass; ``"auto"`` (default) takes ``"explicit"`` where the critic allows it.
    block
        Generator iterations whose random draws are sampled at once (see :class:`DrawStream`).
    gradients
        ``"manual"``: the critic's and the generator / encoder's gradients are written out by
        hand as matrix products (:class:`~scgan_cluster.train._manual.ManualSteps`; needs
        fully connected networks without batch-norm, e.g. the ``"mlp"`` architecture and its
        ensembles), the same numbers as autograd's without building a graph, and one matrix
        product fewer per critic step; ``"autograd"``: torch autograd; ``"auto"`` (default):
        ``"manual"`` for each step whose networks allow it (and when ``penalty`` is not
        ``"autograd"`` and ``joint_critic_batch`` is not ``False``). The hand-written G / E step
        includes the reconstruction term of ``config.beta_r``.
    precision
        ``"fp32"`` (default): everything in the parameters' dtype. ``"bf16"``: the matrix
        products (and convolutions) run in bfloat16, while parameters, gradients, losses, the
        penalty's norm and Adam stay in float32. On the hand-written path the steps cast the
        weights themselves, once per step; on the autograd path (conv networks, batch-norm,
        ``gradients="autograd"``) each step's forward passes and penalty run under
        ``torch.autocast(dtype=torch.bfloat16)`` and the backward pass outside it. Faster on
        CPUs with AMX / AVX-512 BF16 and on GPUs; the results differ from ``"fp32"`` by rounding
        (see ``benchmarks/PERFORMANCE.md`` for the accuracy checks). CPU or CUDA devices only.
    flat_params
        With hand-written gradients: keep the critic's and G / E's parameters each in one flat
        buffer (the parameters are views of it during training and get their own storage back
        at the end), so each Adam step is one fused kernel call on one tensor
        (:class:`~scgan_cluster.train._flat.FlatAdam`, the same update as ``torch.optim.Adam``)
        and, with ``precision="bf16"``, the weights are cast in one conversion per step.
        Default ``True``; ignored on the autograd path.
    compile
        With hand-written gradients (and ``flat_params``): run the critic step, the generator /
        encoder step and the generation of the critic's fakes through ``torch.compile``
        (inductor), which fuses their elementwise operations. The same numbers up to float
        rounding. Compiling takes tens of seconds (once per process and shape), so it pays for
        long runs only (thousands of iterations); default ``False``.

    Returns
    -------
    The history: for each key of :data:`HISTORY_KEYS` a list with one value per record, each the
    mean over the generator iterations since the previous record (critic values averaged over all
    critic steps). Losses are read back from the device only at records, not every step.
    ``generator_loss`` is the adversarial term ``-E D(G(z))``; ``reconstruction_loss`` the
    reconstruction term before ``config.beta_r`` (0 when ``beta_r = 0``).
    For an ensemble: a list of such dicts, one per replica.
    """
    device = source.device
    cfg = config
    n_runs = getattr(critic, "n_runs", None)
    ensemble = n_runs is not None
    n_rep = n_runs if ensemble else 1
    noise_gens = _as_list(noise_generator, n_rep, "noise_generator")
    index_gens = _as_list(index_generator, n_rep, "index_generator")
    if joint_critic_batch is None:
        joint_critic_batch = not has_batch_norm(critic)
    if penalty not in ("auto", "explicit", "autograd"):
        raise ValueError(f"penalty must be 'auto', 'explicit' or 'autograd', got {penalty!r}.")
    layers = None if penalty == "autograd" else penalty_layers(critic)
    # the critic steps' fakes come from the same (fixed) generator: one forward pass for all of
    # them, unless batch-norm would then compute its statistics over n_critic batches at once
    batch_fakes = not has_batch_norm(generator)
    zdim = prior.dim
    if penalty == "explicit" and layers is None:
        raise ValueError(
            "penalty='explicit' needs a piecewise-linear critic defining penalty_layers() "
            "(Linear / Conv2d / (Leaky)ReLU / Flatten, no batch-norm); use penalty='auto'."
        )
    if gradients not in ("auto", "manual", "autograd"):
        raise ValueError(f"gradients must be 'auto', 'manual' or 'autograd', got {gradients!r}.")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}.")
    steps = None
    if (
        gradients != "autograd"
        and penalty != "autograd"
        and joint_critic_batch
        and batch_fakes
        and mlp_chain(critic, "critic") is not None
    ):
        steps = ManualSteps(
            generator,
            encoder,
            critic,
            dtype=torch.bfloat16 if precision == "bf16" else None,
        )
        if steps.g_layers is None:  # the critic's fakes come from an autograd-path G
            steps = None
    manual_g = steps is not None and steps.handles_generator
    if not isinstance(compile, bool) or not isinstance(flat_params, bool):
        raise TypeError("compile and flat_params must be True or False.")
    if compile and not (manual_g and flat_params):
        raise ValueError(
            "compile=True needs the hand-written gradient path (fully connected networks without "
            "batch-norm, gradients not 'autograd') and flat_params=True."
        )
    if gradients == "manual" and not manual_g:
        raise ValueError(
            "gradients='manual' needs fully connected networks without batch-norm (the 'mlp' "
            "architecture or its ensembles), penalty other than 'autograd' and "
            "joint_critic_batch not False; use gradients='auto' for other networks."
        )
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise ValueError(f"precision='bf16' needs a CPU or CUDA device, got {device.type!r}.")
    # the autograd path computes each step's forward passes and penalty under bf16 autocast (the
    # hand-written path casts by itself); one autocast region per optimizer step, so that each
    # weight is cast once per step (autocast caches the casts of leaves within a region) and no
    # cast outlives the update of its weight; the backward passes run outside the regions
    low = precision == "bf16" and not manual_g
    amp = (
        functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)
        if low
        else contextlib.nullcontext
    )
    run_g, run_e, run_d, input_gradient = (
        _float_outputs(fn, low) for fn in (generator, encoder, critic, explicit_input_gradient)
    )
    fused = device.type in ("cpu", "cuda")
    adam = {"lr": cfg.lr, "betas": cfg.betas, "fused" if fused else "foreach": True}
    flat_d = flat_ge = None
    if manual_g and flat_params:
        d_params = chain_parameters(steps.d_layers)
        ge_params = chain_parameters(steps.g_layers) + chain_parameters(steps.e_layers)
        ids = (
            {id(p) for p in critic.parameters()},
            {id(p) for m in (generator, encoder) for p in m.parameters()},
        )
        if ids == ({id(p) for p in d_params}, {id(p) for p in ge_params}):
            flat = {"lr": cfg.lr, "betas": cfg.betas, "fused": fused}
            flat_d, flat_ge = FlatAdam(d_params, **flat), FlatAdam(ge_params, **flat)
        elif compile:
            raise ValueError(
                "compile=True needs networks whose parameters are all in their chains."
            )
    if flat_d is None:
        opt_d = torch.optim.Adam(critic.parameters(), **adam)
        opt_ge = torch.optim.Adam([*generator.parameters(), *encoder.parameters()], **adam)
    else:
        if compile:
            generate_fn, critic_fn, generator_fn = compiled_steps(steps)
        else:
            generate_fn, critic_fn, generator_fn = (
                steps.generate_flat,
                steps.critic_flat,
                steps.generator_flat,
            )
        # eager: the gradients are written into preallocated flat buffers; compiled: returned
        grad_out_d = {} if compile else {"out": torch.empty_like(flat_d.data)}
        grad_out_ge = {} if compile else {"out": torch.empty_like(flat_ge.data)}
        d_cast = steps.cast(flat_d.data)  # D in the compute dtype (None: no conversion)
    streams = [
        DrawStream(
            prior,
            source.n_obs,
            cfg.batch_size,
            cfg.n_critic,
            noise_generator=ng,
            index_generator=ig,
            block=block,
        )
        for ng, ig in zip(noise_gens, index_gens, strict=True)
    ]
    if cfg.prior_update_every:
        if ensemble and prior.weights.dim() == 1:  # one set of proportions per replica
            prior.weights = prior.weights.expand(n_rep, -1).clone()
        for r, stream in enumerate(streams):
            stream.weights = prior.weights[r] if ensemble else prior.weights
    prior_from = math.ceil(PRIOR_START * cfg.max_iter)
    last_prior = -cfg.prior_update_every
    history: list[dict[str, list[float]]] = [
        {key: [] for key in HISTORY_KEYS} for _ in range(n_rep)
    ]
    lead: tuple[int, ...] = (n_rep,) if ensemble else ()
    acc_d = torch.zeros((3, *lead), device=device)
    acc_g = torch.zeros((4, *lead), device=device)
    no_recon = torch.zeros(lead, device=device)
    n_acc = 0
    show = settings.progress_bar if progress is None else progress
    bar = tqdm(
        total=cfg.max_iter,
        desc="ClusterGAN",
        unit="it",
        disable=not show,
        leave=False,
        mininterval=1.0,
    )
    batch, nc = cfg.batch_size, cfg.n_critic
    nl = len(lead)  # dimension of the batch axis
    networks = (generator, encoder, critic)
    _set_training(networks, True)
    start = time.perf_counter()
    it = 0
    try:
        while it < cfg.max_iter:
            if (
                cfg.prior_update_every
                and it >= prior_from
                and it - last_prior >= cfg.prior_update_every
            ):
                update_prior_weights(
                    prior.weights,
                    encoder,
                    source,
                    index_gens[0],
                    n_runs=n_runs,
                    floor=cfg.prior_floor,
                )
                last_prior = it
            n_block = min(block, cfg.max_iter - it)
            draws = [s.next_block(n_block) for s in streams]
            if ensemble:  # stack replicas after the iteration axis: (T, R, ...)
                idx_b, z_b, zn_b, k_b, eps_b = (
                    torch.stack([d[i] for d in draws], dim=1) for i in range(5)
                )
            else:
                idx_b, z_b, zn_b, k_b, eps_b = draws[0]
            for t in range(n_block):
                it += 1
                # one gather of all n_critic real batches of this iteration
                real_all = source.take(idx_b[t].reshape(-1))
                feat = real_all.shape[1:]
                real_all = real_all.view(*lead, nc, batch, *feat)
                z_t = z_b[t].movedim(nl, 0) if ensemble else z_b[t]  # (nc + 1, *lead, batch, zdim)
                eps_t = eps_b[t].movedim(nl, 0) if ensemble else eps_b[t]
                eps_t = eps_t.reshape(*eps_t.shape, *([1] * len(feat)))
                zn_t = zn_b[t].movedim(nl, 0) if ensemble else zn_b[t]
                k_t = k_b[t].movedim(nl, 0) if ensemble else k_b[t]
                # the reconstruction term's real batch: the last critic batch (float32)
                real_r = real_all.select(nl, nc - 1) if cfg.beta_r > 0 else None
                if flat_d is not None:  # hand-written gradients on flat parameter buffers
                    if steps.dtype is not None:
                        real_all = real_all.to(steps.dtype)
                    # low precision: G / E are converted once per iteration (generation and
                    # the G / E step use the same weights), D once per update (its last
                    # conversion serves the G / E step and the next iteration's first step)
                    ge_cast = steps.cast(flat_ge.data)
                    fakes = generate_fn(
                        flat_ge.data,
                        z_t[:nc].movedim(0, nl).reshape(*lead, nc * batch, zdim),
                        ge_cast,
                    )
                    fakes = fakes.view(*lead, nc, batch, *feat)
                    for j in range(nc):
                        grad, loss_d, wdist, gp = critic_fn(
                            flat_d.data,
                            real_all.select(nl, j),
                            fakes.select(nl, j),
                            eps_t[j],
                            cfg.gp_weight,
                            cast=d_cast,
                            **grad_out_d,
                        )
                        flat_d.step(grad)
                        d_cast = steps.cast(flat_d.data)
                        acc_d += torch.stack([loss_d, wdist, gp])
                elif steps is not None:  # hand-written gradients (fully connected networks)
                    steps.refresh_generator()
                    if steps.dtype is not None:
                        real_all = real_all.to(steps.dtype)
                    fakes = steps.generate(z_t[:nc].movedim(0, nl).reshape(*lead, nc * batch, zdim))
                    fakes = fakes.view(*lead, nc, batch, *feat)
                    for j in range(nc):
                        loss_d, wdist, gp = steps.critic_step(
                            real_all.select(nl, j), fakes.select(nl, j), eps_t[j], cfg.gp_weight
                        )
                        opt_d.step()
                        acc_d += torch.stack([loss_d, wdist, gp])
                else:
                    # --- critic: n_critic steps ---
                    _set_requires_grad(critic, True)
                    # G is fixed during the critic steps: all their fakes first, in one pass
                    # (with batch-norm in G: one pass per batch, so each has its own statistics)
                    with torch.no_grad(), amp():
                        if batch_fakes:
                            fakes = run_g(z_t[:nc].movedim(0, nl).reshape(*lead, nc * batch, zdim))
                            fakes = fakes.view(*lead, nc, batch, *fakes.shape[nl + 1 :])
                        else:
                            fakes = torch.stack([run_g(z_t[j]) for j in range(nc)], dim=nl)
                    for j in range(nc):
                        with amp():
                            real = real_all.select(nl, j)
                            fake = fakes.select(nl, j)
                            eps = eps_t[j]
                            x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(layers is None)
                            if joint_critic_batch:
                                d_rf = run_d(torch.cat([real, fake], dim=nl))
                                d_real, d_fake = d_rf.split(batch, dim=nl)
                            else:
                                d_real, d_fake = run_d(real), run_d(fake)
                            if layers is not None:
                                grad = input_gradient(layers, x_hat.detach())
                            else:
                                d_hat = run_d(x_hat)
                                (grad,) = torch.autograd.grad(d_hat.sum(), x_hat, create_graph=True)
                            gp = penalty_from_gradient(grad, nl)
                            wdist = batch_mean(d_real) - batch_mean(d_fake)
                            loss_d = cfg.gp_weight * gp - wdist  # per replica (lead shape)
                        opt_d.zero_grad(set_to_none=True)
                        loss_d.sum().backward()
                        opt_d.step()
                        acc_d += torch.stack([loss_d.detach(), wdist.detach(), gp.detach()])
                if flat_ge is not None:
                    grad, adv, zn_loss, zc_loss, *recon = generator_fn(
                        flat_ge.data,
                        flat_d.data,
                        z_t[nc],
                        zn_t[nc],
                        k_t[nc],
                        cfg.beta_n,
                        cfg.beta_c,
                        ge_cast=ge_cast,
                        d_cast=d_cast,
                        real=real_r,
                        beta_r=cfg.beta_r,
                        **grad_out_ge,
                    )
                    flat_ge.step(grad)
                elif manual_g:
                    adv, zn_loss, zc_loss, *recon = steps.generator_step(
                        z_t[nc], zn_t[nc], k_t[nc], cfg.beta_n, cfg.beta_c, real_r, cfg.beta_r
                    )
                    opt_ge.step()
                else:
                    # --- generator and encoder, jointly ---
                    _set_requires_grad(critic, False)
                    zg = z_t[nc]
                    zn, k = zn_t[nc], k_t[nc]
                    with amp():
                        fake = run_g(zg)
                        zn_hat, zc_logits = run_e(fake)
                        loss_ge, adv, zn_loss, zc_loss = generator_encoder_loss(
                            run_d, fake, zn, k, zn_hat, zc_logits, cfg.beta_n, cfg.beta_c
                        )
                        recon = []
                        if real_r is not None:  # on the last critic batch of this iteration
                            recon = [reconstruction_loss(run_g, run_e, real_r, nl)]
                            loss_ge = loss_ge + cfg.beta_r * recon[0]
                    opt_ge.zero_grad(set_to_none=True)
                    loss_ge.sum().backward()
                    opt_ge.step()
                rec = recon[0].detach() if recon else no_recon
                acc_g += torch.stack([adv.detach(), zn_loss.detach(), zc_loss.detach(), rec])
                n_acc += 1
                if it % cfg.log_every == 0 or it == cfg.max_iter:
                    means = torch.cat([acc_d / nc, acc_g]) / n_acc  # (7, *lead)
                    values = means.reshape(7, n_rep).T.tolist()  # per replica
                    if not all(math.isfinite(v) for row in values for v in row):
                        raise FloatingPointError(
                            f"ClusterGAN training diverged at generator iteration {it} (non-finite loss). "
                            "Try a smaller lr, or check the input for extreme values."
                        )
                    seconds = time.perf_counter() - start
                    records = [
                        dict(
                            zip(HISTORY_KEYS[2:], row, strict=True),
                            iteration=float(it),
                            seconds=seconds,
                        )
                        for row in values
                    ]
                    for hist, record in zip(history, records, strict=True):
                        for key in HISTORY_KEYS:
                            hist[key].append(float(record[key]))
                    acc_d.zero_()
                    acc_g.zero_()
                    n_acc = 0
                    first = records[0]
                    bar.set_postfix(
                        W=f"{first['wasserstein']:.3g}",
                        zn=f"{first['zn_loss']:.3g}",
                        zc=f"{first['zc_loss']:.3g}",
                        refresh=False,
                    )
                    logger.debug(
                        "iteration %d: critic %.4g, W %.4g, gp %.4g, G %.4g, zn %.4g, zc %.4g, rec %.4g",
                        it,
                        *values[0],
                    )
                    if callback is not None:
                        if ensemble:
                            callback(it, {k: [r[k] for r in records] for k in HISTORY_KEYS})
                        else:
                            callback(it, first)
                        _set_training(networks, True)
                bar.update(1)
    finally:
        bar.close()
        for buffer in (flat_d, flat_ge):
            if buffer is not None:
                buffer.release()
        _set_requires_grad(critic, True)
        _set_training(networks, False)
    return history if ensemble else history[0]


@torch.no_grad()
def encode(
    encoder: nn.Module, source: BatchSource, *, chunk_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode all rows of ``source`` in chunks. Returns ``(zn_hat, zc_logits)`` on the CPU.

    Parameters
    ----------
    encoder
        Maps a batch to ``(zn_hat, zc_logits)``.
    source
        The data.
    chunk_size
        Rows per forward pass (memory is bounded by one chunk).
    """
    encoder.eval()
    zns, logits = [], []
    for start in range(0, source.n_obs, chunk_size):
        idx = torch.arange(start, min(start + chunk_size, source.n_obs))
        zn, lg = encoder(source.take(idx))
        zns.append(zn.float().cpu())
        logits.append(lg.float().cpu())
    return torch.cat(zns), torch.cat(logits)
