"""The discrete-continuous prior of ClusterGAN: z = (zn, zc), zn ~ N(0, sigma^2 I), zc one-hot."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MixedPrior"]


class MixedPrior(nn.Module):
    """The ClusterGAN prior (Section 2.3 of the paper).

    Parameters
    ----------
    n_latent
        Dimension of the continuous part zn.
    n_clusters
        K, the dimension of the one-hot part zc.
    sigma
        Standard deviation of zn (the paper uses 0.1 everywhere).
    """

    def __init__(self, n_latent: int, n_clusters: int, sigma: float = 0.1) -> None:
        super().__init__()
        self.n_latent = int(n_latent)
        self.n_clusters = int(n_clusters)
        self.sigma = float(sigma)
        # uniform cluster proportions; a buffer so that it follows .to(device) and state_dict
        self.register_buffer("weights", torch.full((self.n_clusters,), 1.0 / self.n_clusters))

    @property
    def dim(self) -> int:
        """Dimension of z = (zn, zc)."""
        return self.n_latent + self.n_clusters

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        cluster: int | torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw ``n`` latent vectors.

        ``cluster`` fixes the mode of every draw; otherwise modes are drawn with probabilities
        ``weights`` (default: this prior's ``weights``, uniform unless learned).

        Returns
        -------
        z
            ``(n, n_latent + n_clusters)``, zn joined with one-hot zc.
        zn
            ``(n, n_latent)`` continuous part.
        k
            ``(n,)`` int64 cluster index of each draw.
        """
        device = self.weights.device
        zn = torch.randn(n, self.n_latent, generator=generator, device=device) * self.sigma
        if cluster is None:
            w = self.weights if weights is None else weights
            k = torch.multinomial(w, n, replacement=True, generator=generator)
        elif isinstance(cluster, torch.Tensor):
            k = cluster.to(device=device, dtype=torch.long)
        else:
            k = torch.full((n,), int(cluster), dtype=torch.long, device=device)
        zc = nn.functional.one_hot(k, self.n_clusters).to(zn.dtype)
        return torch.cat([zn, zc], dim=1), zn, k
