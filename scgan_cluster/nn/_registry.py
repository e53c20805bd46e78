"""Registry of architectures: a name maps to a builder of (generator, encoder, critic)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ._mlp import MLPCritic, MLPEncoder, MLPGenerator

__all__ = ["Architecture", "ARCHITECTURES", "register_architecture", "build_networks"]


@dataclass(frozen=True)
class Architecture:
    """One registry entry.

    Attributes
    ----------
    build
        ``build(n_features, n_latent, n_clusters, **options) -> (generator, encoder, critic)``.
    defaults
        The paper's hyperparameters for this architecture (overridable by the caller).
    description
        One line shown in error messages and docs.
    """

    build: Callable[..., tuple[nn.Module, nn.Module, nn.Module]]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(
    name: str, architecture: Architecture, *, overwrite: bool = False
) -> None:
    """Add an architecture under ``name`` (an error if taken, unless ``overwrite``).

    Parameters
    ----------
    name
        Registry key, as passed to ``ClusterGAN(architecture=...)``.
    architecture
        The entry.
    overwrite
        Replace an existing entry of that name.
    """
    if name in ARCHITECTURES and not overwrite:
        raise ValueError(f"Architecture {name!r} is already registered; pass overwrite=True.")
    ARCHITECTURES[name] = architecture


def _build_mlp(
    n_features: int,
    n_latent: int,
    n_clusters: int,
    *,
    hidden: tuple[int, ...] = (256, 256),
    leak: float = 0.2,
    batch_norm: bool = False,
    output: str = "linear",
) -> tuple[nn.Module, nn.Module, nn.Module]:
    hidden = tuple(int(h) for h in hidden)
    return (
        MLPGenerator(
            n_features,
            n_latent,
            n_clusters,
            hidden,
            leak=leak,
            batch_norm=batch_norm,
            output=output,
        ),
        MLPEncoder(n_features, n_latent, n_clusters, hidden, leak=leak, batch_norm=batch_norm),
        MLPCritic(n_features, hidden, leak=leak, batch_norm=batch_norm),
    )


register_architecture(
    "mlp",
    Architecture(
        build=_build_mlp,
        defaults={"hidden": (256, 256), "leak": 0.2, "batch_norm": False, "output": "linear"},
        description="the paper's 10x_73k MLP: FC256-LReLU(0.2) x2 in G, E and D; linear output",
    ),
)


def build_networks(
    name: str, n_features: int, n_latent: int, n_clusters: int, **options: Any
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """Build the (generator, encoder, critic) of architecture ``name`` with its defaults updated by ``options``.

    Parameters
    ----------
    name
        Registry key.
    n_features
        Dimension of a data point.
    n_latent
        Dimension of zn.
    n_clusters
        Dimension of zc.
    **options
        Architecture options (see the entry's ``defaults``).
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}; registered: {sorted(ARCHITECTURES)}.")
    entry = ARCHITECTURES[name]
    unknown = set(options) - set(entry.defaults)
    if unknown:
        raise ValueError(
            f"Architecture {name!r} takes the options {sorted(entry.defaults)}, not {sorted(unknown)}."
        )
    return entry.build(n_features, n_latent, n_clusters, **{**entry.defaults, **options})
