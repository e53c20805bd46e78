"""Optimisation settings of the training loop and the constants of its learned prior."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scgan_cluster._validation import check_positive_int

__all__ = [
    "PRIOR_FLOOR",
    "PRIOR_MOMENTUM",
    "PRIOR_SAMPLE",
    "PRIOR_START",
    "TrainConfig",
]

PRIOR_START = 0.25
"""Fraction of the run after which a learned prior starts to be re-estimated."""
PRIOR_MOMENTUM = 0.5
"""Weight of the new estimate when the prior's cluster proportions are updated."""
PRIOR_FLOOR = 0.1
"""No cluster proportion of a learned prior falls below ``PRIOR_FLOOR / K``."""
PRIOR_SAMPLE = 2048
"""Real samples encoded for one estimate of the cluster proportions."""


@dataclass
class TrainConfig:
    """Optimisation settings; every default is the paper's (appendix 6.2), except ``max_iter``.

    ``log_every`` (generator iterations between history records) defaults to ``max_iter // 100``.

    ``prior_update_every`` (0: never, the paper's fixed uniform prior) re-estimates the cluster
    proportions of the prior's zc from the encoder every that many generator iterations, from
    ``PRIOR_START`` of the run on: the mean of softmax(zc_hat) over ``PRIOR_SAMPLE`` random real
    samples is mixed into the weights with momentum ``PRIOR_MOMENTUM``, and every weight is
    floored at ``prior_floor / K`` before renormalising (so no mode is switched off;
    ``prior_floor`` defaults to ``PRIOR_FLOOR``, 0.1). See
    :func:`~scgan_cluster.train._loop.update_prior_weights`.

    ``beta_r`` (0: the paper's objective) adds ``beta_r`` times a reconstruction term on real
    samples to the joint G / E objective: ``E_x ||x - G([zn_hat, softmax(zc_logits)])||^2``
    with ``(zn_hat, zc_logits) = E(x)``, the squared norm summed over features and the
    expectation a batch mean (:func:`~scgan_cluster.train._losses.reconstruction_loss`). Its
    real batch is the last critic batch of the same generator iteration (no extra draw, so the
    random streams are those of ``beta_r = 0``). The paper's encoder only ever sees generated
    samples; this term trains it on real ones too. Not in the paper.

    ``lr_final`` (``None``: the paper's constant ``lr``) makes the learning rate of every
    optimiser fall linearly over the run, from ``lr`` at the first generator iteration to
    ``lr_final`` at the last (:meth:`lr_at`; the critic steps of an iteration use its rate).
    Not in the paper.
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
    lr_final: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_iter", "batch_size", "n_critic"):
            setattr(self, name, check_positive_int(getattr(self, name), name))
        for name in ("lr", "gp_weight", "beta_n", "beta_c", "beta_r"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
        if self.lr == 0:
            raise ValueError("lr must be > 0.")
        if self.lr_final is not None:
            value = self.lr_final
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"lr_final must be a finite number > 0 or None, got {value!r}.")
            self.lr_final = float(value)
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

    def lr_at(self, iteration: int) -> float:
        """Learning rate of generator iteration ``iteration`` (0 = the first).

        Parameters
        ----------
        iteration
            0-based index of the generator iteration, below ``max_iter``.
        """
        if self.lr_final is None:
            return float(self.lr)
        fraction = iteration / max(1, self.max_iter - 1)
        return float(self.lr + (self.lr_final - self.lr) * fraction)

    def to_dict(self) -> dict:
        """JSON-friendly dict of the settings."""
        d = asdict(self)
        d["betas"] = list(d["betas"])
        return d
