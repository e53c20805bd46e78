"""The ClusterGAN training loop. It sees only torch modules and tensors, never AnnData."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import nn
from tqdm import tqdm

from scgan_cluster._settings import logger, settings
from scgan_cluster._validation import check_positive_int
from scgan_cluster.nn import MixedPrior

from ._checkpoint import load_checkpoint, run_signature, save_checkpoint
from ._config import PRIOR_FLOOR, PRIOR_MOMENTUM, PRIOR_SAMPLE, PRIOR_START, TrainConfig
from ._steps import FlatStep, TrainStep, has_batch_norm, make_step

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
    "run_seconds",
    "CapturedIteration",
    "check_cuda_graph",
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


def run_seconds(history: dict[str, list[float]], wall: float) -> float:
    """Training seconds of a run: ``wall`` or the loop's clock at its last record, the larger.

    Parameters
    ----------
    history
        The history :func:`train_clustergan` returned (one replica's).
    wall
        The seconds the call that trained took. A run resumed from a checkpoint has a history
        whose clock counts the seconds before the stop, so it reports those as well.
    """
    recorded = history.get("seconds") or []
    return max(float(recorded[-1]), wall) if recorded else wall


@runtime_checkable
class BatchSource(Protocol):
    """What the loop needs of the data: its size and a way to fetch rows as a float tensor.

    A source may also define ``prefetch(idx)`` (called with each block's row indices before
    its iterations) and ``gathers_on_device = True`` (the loop then hands ``take`` indices
    already on ``device``, moved there once per block).
    """

    n_obs: int
    device: torch.device

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` (int64 tensor) as a float32 tensor on ``self.device``."""
        ...


class EpochSampler:
    """Minibatch indices without replacement within an epoch; a new permutation per epoch.

    A final partial batch of an epoch is dropped, so every batch has ``batch_size`` rows. The
    indices are drawn on the generator's device (a CUDA generator keeps them on the GPU).
    """

    def __init__(self, n_obs: int, batch_size: int, generator: torch.Generator) -> None:
        if batch_size > n_obs:
            raise ValueError(
                f"batch_size={batch_size} is larger than the number of samples ({n_obs})."
            )
        self.n_obs = n_obs
        self.batch_size = batch_size
        self.generator = generator
        self._perm = torch.empty(0, dtype=torch.long, device=generator.device)
        self._pos = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        if self._pos + self.batch_size > len(self._perm):
            self._perm = torch.randperm(
                self.n_obs, generator=self.generator, device=self.generator.device
            )
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        """The current permutation and position (the generator's state is saved with it)."""
        return {"perm": self._perm.clone(), "pos": self._pos, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor | int]) -> None:
        """Continue from :meth:`state_dict`'s output."""
        self._perm = state["perm"].clone()
        self._pos = int(state["pos"])
        self.generator.set_state(state["rng"])


def _set_training(modules: tuple[nn.Module, ...], training: bool) -> None:
    for module in modules:
        module.train(training)


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
            ``(n_iter, n_critic * batch)`` int64 row indices (on ``index_generator``'s device).
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
        Random generator choosing the samples (the minibatch order's, on its device).
    n_runs
        R for an ensemble encoder, else ``None``.
    floor
        Every proportion is floored at ``floor / K`` before renormalising, so it ends at least
        ``floor / (K (1 + floor))`` (``TrainConfig.prior_floor``).
    """
    m = min(PRIOR_SAMPLE, source.n_obs)
    idx = torch.randperm(source.n_obs, generator=generator, device=generator.device)[:m]
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


def check_cuda_graph(step: TrainStep, config: TrainConfig, device: torch.device) -> None:
    """Raise a ``ValueError`` saying why ``cuda_graph=True`` cannot run with these settings.

    Parameters
    ----------
    step
        The step object the loop would use (:func:`~scgan_cluster.train._steps.make_step`).
    config
        The optimisation settings.
    device
        Where the networks train.
    """
    if device.type != "cuda":
        raise ValueError(
            f"cuda_graph=True needs a CUDA device, got {device.type!r}; use cuda_graph=False."
        )
    if not isinstance(step, FlatStep):
        raise ValueError(
            "cuda_graph=True needs the hand-written gradients on flat buffers: fully connected "
            "networks without batch-norm (the 'mlp' architecture, e.g. with "
            "architecture_options={'critic_batch_norm': False} for the paper's synthetic / "
            "Pendigits networks) and gradients='auto'; use cuda_graph=False."
        )
    if config.lr_final is not None:
        raise ValueError(
            "cuda_graph=True needs a constant learning rate (the graph fixes it); "
            "pass lr_final=None or cuda_graph=False."
        )


_CAPTURE_LOCK = threading.Lock()


class CapturedIteration:
    """A generator iteration recorded once as a CUDA graph, then replayed.

    The first ``warmup`` calls run ``fn`` eagerly on a side stream (as torch's CUDA graph notes
    advise, so that libraries finish their lazy set-up); the next call copies its inputs into
    static buffers, captures ``fn`` on them and replays it; every later call copies its inputs
    into those buffers and replays. ``fn`` must read and write only tensors whose storage
    outlives the graph (the step's flat buffers, the loop's totals) and must not synchronise
    with the host; every call is a real iteration, including the warm-up ones.

    Parameters
    ----------
    fn
        ``fn(*tensors)``, returning nothing.
    warmup
        Eager calls before the capture.
    """

    def __init__(self, fn: Callable[..., None], warmup: int = 3) -> None:
        self.fn = fn
        self.warmup = check_positive_int(warmup, "warmup")
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: list[torch.Tensor] = []

    def __call__(self, *inputs: torch.Tensor) -> None:
        self.calls += 1
        if self.graph is not None:
            for static, value in zip(self.static, inputs, strict=True):
                static.copy_(value)
        elif self.calls <= self.warmup:
            side = torch.cuda.Stream(inputs[0].device)
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.fn(*inputs)
            torch.cuda.current_stream().wait_stream(side)
            return
        else:
            self.static = [value.clone() for value in inputs]
            graph = torch.cuda.CUDAGraph()
            # one capture at a time, each on its own stream; thread_local: other threads (another
            # ensemble training concurrently) go on using CUDA while this one captures
            with (
                _CAPTURE_LOCK,
                torch.cuda.graph(
                    graph,
                    stream=torch.cuda.Stream(inputs[0].device),
                    capture_error_mode="thread_local",
                ),
            ):
                self.fn(*self.static)
            self.graph = graph
        self.graph.replay()


def _diverged(first: int, last: int) -> str:
    """The error message of a non-finite loss seen over generator iterations ``first + 1 .. last``."""
    where = f"iteration {last}" if last - first <= 1 else f"iterations {first + 1}-{last}"
    return (
        f"ClusterGAN training diverged at generator {where} (a loss became NaN or infinite). "
        "No labels were produced. Try a smaller lr, or check the input for extreme values."
    )


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
    compile: bool = False,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    cuda_graph: bool = False,
) -> dict[str, list[float]] | list[dict[str, list[float]]]:
    """Train ClusterGAN with WGAN-GP (Algorithm 2 of the paper, ``n_critic`` critic steps per G/E step).

    The loop draws the minibatches, latent codes and interpolation weights (:class:`DrawStream`),
    updates a learned prior, keeps the history and checks for divergence; the optimisation
    steps themselves are a step object (:mod:`scgan_cluster.train._steps`) that
    ``gradients``, ``penalty``, ``precision`` and ``compile`` choose
    (:func:`~scgan_cluster.train._steps.make_step`).

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
        Random generator for the minibatch order (for an ensemble: one per replica), on the
        CPU, or on ``source.device`` for a source that gathers there (``gathers_on_device``),
        so that the indices never pass through the host.
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
        product fewer per critic step. The parameters are then kept in one flat buffer per
        optimiser (they are views of it during training and get their own storage back at the
        end), so each Adam update is one fused kernel call on one tensor
        (:class:`~scgan_cluster.train._steps.FlatStep`). ``"autograd"``: torch autograd
        (:class:`~scgan_cluster.train._steps.AutogradStep`). ``"auto"`` (default):
        ``"manual"`` for each step whose networks allow it (and when ``penalty`` is not
        ``"autograd"`` and ``joint_critic_batch`` is not ``False``); a fully connected critic
        and generator with another encoder get the hand-written critic step and autograd's
        G / E step (:class:`~scgan_cluster.train._steps.ManualStep`). The hand-written G / E
        step includes the reconstruction term of ``config.beta_r``.
    precision
        ``"fp32"`` (default): everything in the parameters' dtype. ``"bf16"``: the matrix
        products (and convolutions) run in bfloat16, while parameters, gradients, losses, the
        penalty's norm and Adam stay in float32. On the hand-written path the steps cast the
        weights themselves, once per step; on the autograd path (conv networks, batch-norm,
        ``gradients="autograd"``) each step's forward passes and penalty run under
        ``torch.autocast(dtype=torch.bfloat16)`` and the backward pass outside it. Faster on
        CPUs with AMX / AVX-512 BF16 and on GPUs; the results differ from ``"fp32"`` by rounding
        (see ``benchmarks/PERFORMANCE.md`` for the accuracy checks). CPU or CUDA devices only.
    compile
        With hand-written gradients on flat buffers: run the critic step, the generator /
        encoder step and the generation of the critic's fakes through ``torch.compile``
        (inductor), which fuses their elementwise operations. The same numbers up to float
        rounding. Compiling takes tens of seconds (once per process and shape), so it pays for
        long runs only (thousands of iterations); default ``False``.
    checkpoint
        A file to keep the run's state in (:mod:`scgan_cluster.train._checkpoint`): written
        every ``checkpoint_every`` generator iterations and at the end, replaced atomically.
        When the file exists at the start, the run continues from it (and ends with the same
        weights and history as a run that was never stopped, on the same device); a file of
        another run (other settings, data, device or step) is refused with a ``ValueError``.
        ``None`` (default): no checkpoints.
    checkpoint_every
        Generator iterations between checkpoints, rounded up to whole blocks of ``block``;
        ``None``: ``max_iter // 20``.
    cuda_graph
        On a CUDA device with hand-written gradients on flat buffers (:class:`FlatStep`, the
        fully connected networks): after a few eager iterations, capture one whole generator
        iteration (the ``n_critic`` critic steps with their Adam updates, the G / E step with
        its update, the running totals) as a CUDA graph and replay it for every later iteration
        (:class:`CapturedIteration`), so that an iteration costs a few kernel launches from
        Python instead of several hundred. The same kernels as the eager loop, so the same
        numbers. Not with ``config.lr_final`` (the rate is fixed in the graph). Default
        ``False``.

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
    step = make_step(
        generator,
        encoder,
        critic,
        cfg,
        device=device,
        joint_critic_batch=joint_critic_batch,
        penalty=penalty,
        gradients=gradients,
        precision=precision,
        compile=compile,
    )
    if cuda_graph:
        try:
            check_cuda_graph(step, cfg, device)
        except Exception:
            step.close()
            raise
    show = settings.progress_bar if progress is None else progress
    bar = tqdm(
        total=cfg.max_iter,
        desc="ClusterGAN",
        unit="it",
        disable=not show,
        leave=False,
        mininterval=1.0,
    )
    networks = (generator, encoder, critic)
    if checkpoint is not None:
        every = check_positive_int(
            max(1, cfg.max_iter // 20) if checkpoint_every is None else checkpoint_every,
            "checkpoint_every",
        )
        signature = run_signature(
            cfg.to_dict(), source, n_rep, block, type(step).__name__, precision
        )
    try:
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
        batch, nc = cfg.batch_size, cfg.n_critic
        nl = len(lead)  # dimension of the batch axis

        def iteration(real_all, z_t, zn_t, k_t, eps_t) -> None:
            """The critic steps and the G / E step of one generator iteration, totals added."""
            feat = real_all.shape[1:]
            real_all = real_all.view(*lead, nc, batch, *feat)
            if ensemble:  # replicas after the batches: (nc + 1, R, batch, ...)
                z_t, zn_t, k_t, eps_t = (v.movedim(nl, 0) for v in (z_t, zn_t, k_t, eps_t))
            eps_t = eps_t.reshape(*eps_t.shape, *([1] * len(feat)))
            step.critic_steps(real_all, z_t[:nc], eps_t, acc_d)
            # the reconstruction term's real batch: the last critic batch (float32)
            real_r = real_all.select(nl, nc - 1) if cfg.beta_r > 0 else None
            adv, zn_loss, zc_loss, rec = step.generator_step(z_t[nc], zn_t[nc], k_t[nc], real_r)
            rec = no_recon if rec is None else rec
            acc_g.add_(torch.stack([adv, zn_loss, zc_loss, rec]))

        run_iteration = CapturedIteration(iteration) if cuda_graph else iteration
        _set_training(networks, True)
        start = time.perf_counter()
        it = 0

        def state() -> dict:
            return {
                "signature": signature,
                "iteration": it,
                "seconds": time.perf_counter() - start,
                "last_prior": last_prior,
                "networks": [m.state_dict() for m in networks],
                "step": step.state_dict(),
                "noise": [g.get_state() for g in noise_gens],
                "samplers": [s.sampler.state_dict() for s in streams],
                "prior_weights": prior.weights.clone(),
                "accumulators": [acc_d.clone(), acc_g.clone(), n_acc],
                "history": history,
            }

        if checkpoint is not None and Path(checkpoint).exists():
            saved = load_checkpoint(checkpoint, signature)
            with torch.no_grad():
                for module, weights in zip(networks, saved["networks"], strict=True):
                    module.load_state_dict(weights)
                step.load_state_dict(saved["step"])
                prior.weights.copy_(saved["prior_weights"])
                acc_d.copy_(saved["accumulators"][0])
                acc_g.copy_(saved["accumulators"][1])
            for g, rng in zip(noise_gens, saved["noise"], strict=True):
                g.set_state(rng)
            for stream, sampler in zip(streams, saved["samplers"], strict=True):
                stream.sampler.load_state_dict(sampler)
            n_acc = int(saved["accumulators"][2])
            history = saved["history"]
            it, last_prior = int(saved["iteration"]), int(saved["last_prior"])
            start -= float(saved["seconds"])
            bar.update(it)
            logger.info("continuing ClusterGAN training from %s at iteration %d", checkpoint, it)
        saved_at = it
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
            if hasattr(source, "prefetch"):  # a source that reads rows from elsewhere (dask)
                source.prefetch(idx_b)
            if getattr(source, "gathers_on_device", False) and idx_b.device != device:
                # one copy per block, so the iterations' gathers never wait on the host
                pinned = idx_b.pin_memory() if device.type == "cuda" else idx_b
                idx_b = pinned.to(device, non_blocking=True)
            for t in range(n_block):
                if cfg.lr_final is not None:
                    step.set_lr(cfg.lr_at(it))
                it += 1
                # one gather of all n_critic real batches of this iteration
                real_all = source.take(idx_b[t].reshape(-1))
                run_iteration(real_all, z_b[t], zn_b[t], k_b[t], eps_b[t])
                n_acc += 1
                if it % cfg.log_every == 0 or it == cfg.max_iter:
                    means = torch.cat([acc_d / nc, acc_g]) / n_acc  # (7, *lead)
                    values = means.reshape(7, n_rep).T.tolist()  # per replica
                    if not all(math.isfinite(v) for row in values for v in row):
                        raise FloatingPointError(_diverged(it - n_acc, it))
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
            if checkpoint is not None and (it - saved_at >= every or it == cfg.max_iter):
                if not bool(torch.isfinite(torch.cat([acc_d.flatten(), acc_g.flatten()])).all()):
                    raise FloatingPointError(_diverged(it - n_acc, it))
                save_checkpoint(checkpoint, state())
                saved_at = it
    finally:
        bar.close()
        step.close()
        _set_training(networks, False)
    return history if ensemble else history[0]


@torch.no_grad()
def encode(
    encoder: nn.Module | Sequence[nn.Module], source: BatchSource, *, chunk_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor] | list[tuple[torch.Tensor, torch.Tensor]]:
    """Encode all rows of ``source`` in chunks. Returns ``(zn_hat, zc_logits)`` on the CPU.

    Parameters
    ----------
    encoder
        Maps a batch to ``(zn_hat, zc_logits)``; or a list of such encoders, which then encode
        each chunk in turn (the source is read once) and get one ``(zn_hat, zc_logits)`` each.
    source
        The data.
    chunk_size
        Rows per forward pass (memory is bounded by one chunk).
    """
    encoders = list(encoder) if isinstance(encoder, (list, tuple)) else [encoder]
    for enc in encoders:
        enc.eval()
    zns: list[list[torch.Tensor]] = [[] for _ in encoders]
    logits: list[list[torch.Tensor]] = [[] for _ in encoders]
    for start in range(0, source.n_obs, chunk_size):
        idx = torch.arange(start, min(start + chunk_size, source.n_obs))
        x = source.take(idx)
        for i, enc in enumerate(encoders):
            zn, lg = enc(x)
            zns[i].append(zn.float().cpu())
            logits[i].append(lg.float().cpu())
    out = [(torch.cat(z), torch.cat(lg)) for z, lg in zip(zns, logits, strict=True)]
    return out if isinstance(encoder, (list, tuple)) else out[0]
