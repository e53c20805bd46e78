"""The ClusterGAN training loop. It sees only torch modules and tensors, never AnnData."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn
from tqdm import tqdm

from scgan_cluster._settings import logger, settings
from scgan_cluster._validation import check_positive_int
from scgan_cluster.nn import MixedPrior

from ._losses import critic_loss, generator_encoder_loss

__all__ = [
    "BatchSource",
    "TrainConfig",
    "HISTORY_KEYS",
    "train_clustergan",
    "encode",
    "EpochSampler",
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
)


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
    """

    max_iter: int = 5000
    batch_size: int = 64
    n_critic: int = 5
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    gp_weight: float = 10.0
    beta_n: float = 10.0
    beta_c: float = 10.0
    log_every: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_iter", "batch_size", "n_critic"):
            setattr(self, name, check_positive_int(getattr(self, name), name))
        for name in ("lr", "gp_weight", "beta_n", "beta_c"):
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


def train_clustergan(
    generator: nn.Module,
    encoder: nn.Module,
    critic: nn.Module,
    prior: MixedPrior,
    source: BatchSource,
    config: TrainConfig,
    *,
    noise_generator: torch.Generator,
    index_generator: torch.Generator,
    progress: bool | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, list[float]]:
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
    index_generator
        CPU random generator for the minibatch order.
    progress
        Show a tqdm bar; ``None`` follows :attr:`scgan_cluster.settings.progress_bar`.
    callback
        Called as ``callback(iteration, record)`` after each history record (every
        ``config.log_every`` iterations), e.g. to evaluate or checkpoint; the networks are put
        back in training mode afterwards.

    Returns
    -------
    The history: for each key of :data:`HISTORY_KEYS` a list with one value per record, each the
    mean over the generator iterations since the previous record (critic values averaged over all
    critic steps). Losses are read back from the device only at records, not every step.
    """
    device = source.device
    cfg = config
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_ge = torch.optim.Adam(
        [*generator.parameters(), *encoder.parameters()], lr=cfg.lr, betas=cfg.betas
    )
    sampler = EpochSampler(source.n_obs, cfg.batch_size, index_generator)
    history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
    acc = torch.zeros(6, device=device)
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
    batch = cfg.batch_size
    eps_shape: tuple[int, ...] | None = None
    networks = (generator, encoder, critic)
    _set_training(networks, True)
    start = time.perf_counter()
    try:
        for it in range(1, cfg.max_iter + 1):
            # --- critic: n_critic steps, each with a fresh real batch and fresh noise ---
            _set_requires_grad(critic, True)
            for _ in range(cfg.n_critic):
                real = source.take(next(sampler))
                if eps_shape is None:
                    eps_shape = (batch,) + (1,) * (real.dim() - 1)
                with torch.no_grad():
                    z, _, _ = prior.sample(batch, generator=noise_generator)
                    fake = generator(z)
                eps = torch.rand(eps_shape, generator=noise_generator, device=device)
                loss_d, wdist, gp = critic_loss(critic, real, fake, eps, cfg.gp_weight)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                acc[0] += loss_d.detach() / cfg.n_critic
                acc[1] += wdist / cfg.n_critic
                acc[2] += gp / cfg.n_critic
            # --- generator and encoder, jointly ---
            _set_requires_grad(critic, False)
            z, zn, k = prior.sample(batch, generator=noise_generator)
            fake = generator(z)
            zn_hat, zc_logits = encoder(fake)
            loss_ge, adv, zn_loss, zc_loss = generator_encoder_loss(
                critic, fake, zn, k, zn_hat, zc_logits, cfg.beta_n, cfg.beta_c
            )
            opt_ge.zero_grad(set_to_none=True)
            loss_ge.backward()
            opt_ge.step()
            acc[3] += adv
            acc[4] += zn_loss
            acc[5] += zc_loss
            n_acc += 1
            if it % cfg.log_every == 0 or it == cfg.max_iter:
                values = (acc / n_acc).tolist()
                if not all(math.isfinite(v) for v in values):
                    raise FloatingPointError(
                        f"ClusterGAN training diverged at generator iteration {it} (non-finite loss). "
                        "Try a smaller lr, or check the input for extreme values."
                    )
                record = dict(
                    zip(HISTORY_KEYS[2:], values, strict=True),
                    iteration=float(it),
                    seconds=time.perf_counter() - start,
                )
                for key in HISTORY_KEYS:
                    history[key].append(float(record[key]))
                acc.zero_()
                n_acc = 0
                bar.set_postfix(
                    W=f"{record['wasserstein']:.3g}",
                    zn=f"{record['zn_loss']:.3g}",
                    zc=f"{record['zc_loss']:.3g}",
                    refresh=False,
                )
                logger.debug(
                    "iteration %d: critic %.4g, W %.4g, gp %.4g, G %.4g, zn %.4g, zc %.4g",
                    it,
                    *values,
                )
                if callback is not None:
                    callback(it, record)
                    _set_training(networks, True)
            bar.update(1)
    finally:
        bar.close()
        _set_requires_grad(critic, True)
        _set_training(networks, False)
    return history


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
