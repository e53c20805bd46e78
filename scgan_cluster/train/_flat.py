"""Parameters of a network kept in one flat buffer, with an Adam update over that one tensor.

The hand-written gradients of :class:`~scgan_cluster.train._manual.ManualSteps` do not need
autograd, so the parameters can live in one contiguous buffer
(:class:`~scgan_cluster.train._steps.FlatStep`): each parameter
becomes a view of it, the gradient comes as one flat tensor, and Adam is one
call of torch's fused (or single-tensor) Adam kernel on one tensor
(:func:`torch.optim.adam.adam`, the functional form of :class:`torch.optim.Adam`) instead of a
loop over the parameters inside ``Optimizer.step`` (whose Python overhead was about half of
Adam's cost at batch 64).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.optim.adam import adam as _adam

__all__ = ["FlatAdam"]


class FlatAdam:
    """Adam over parameters stored in one flat buffer (the parameters become views of it).

    Same update as ``torch.optim.Adam(params, lr=lr, betas=betas, fused=fused)`` (elementwise,
    so a flat buffer changes nothing but the number of kernel launches); the tests compare it
    with :class:`torch.optim.Adam` in float64.

    Parameters
    ----------
    params
        The parameters, all of one dtype and device; they are re-pointed into the buffer (their
        values are kept) until :meth:`release`.
    lr, betas, eps
        Adam's settings (``weight_decay`` 0, no amsgrad: the paper's optimiser).
    fused
        Use torch's fused Adam kernel (CPU / CUDA); else the single-tensor implementation.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        *,
        lr: float,
        betas: tuple[float, float],
        eps: float = 1e-8,
        fused: bool = True,
    ) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("FlatAdam needs at least one parameter.")
        first = self.params[0]
        if any(p.dtype != first.dtype or p.device != first.device for p in self.params):
            raise ValueError("FlatAdam needs parameters of one dtype and device.")
        self.numels = [p.numel() for p in self.params]
        self.data = torch.empty(sum(self.numels), dtype=first.dtype, device=first.device)
        offset = 0
        with torch.no_grad():
            for p, n in zip(self.params, self.numels, strict=True):
                view = self.data[offset : offset + n].view_as(p)
                view.copy_(p)
                p.data = view
                offset += n
        self.exp_avg = torch.zeros_like(self.data)
        self.exp_avg_sq = torch.zeros_like(self.data)
        # float32 step counter, as torch.optim.Adam keeps it (on the device for the fused kernel)
        self.step_count = torch.zeros(
            (), dtype=torch.float32, device=first.device if fused else "cpu"
        )
        self.lr, self.betas, self.eps, self.fused = float(lr), betas, float(eps), fused

    def step(self, grad: torch.Tensor) -> None:
        """One Adam update of the buffer (and so of the parameters) from the flat gradient ``grad``."""
        _adam(
            [self.data],
            [grad],
            [self.exp_avg],
            [self.exp_avg_sq],
            [],
            [self.step_count],
            foreach=False,
            fused=self.fused or None,
            amsgrad=False,
            beta1=self.betas[0],
            beta2=self.betas[1],
            lr=self.lr,
            weight_decay=0.0,
            eps=self.eps,
            maximize=False,
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Adam's moments and step count (copies; the parameters are the networks' own state)."""
        return {
            "exp_avg": self.exp_avg.clone(),
            "exp_avg_sq": self.exp_avg_sq.clone(),
            "step_count": self.step_count.clone(),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned (same parameters, same sizes)."""
        for name in ("exp_avg", "exp_avg_sq", "step_count"):
            mine, theirs = getattr(self, name), state[name]
            if mine.shape != theirs.shape:
                raise ValueError(
                    f"FlatAdam state {name!r} has shape {tuple(theirs.shape)}, expected "
                    f"{tuple(mine.shape)}: it belongs to other networks."
                )
            mine.copy_(theirs)

    def release(self) -> None:
        """Give every parameter its own storage again (current values; the buffer is dropped)."""
        with torch.no_grad():
            for p in self.params:
                p.data = p.data.clone()
