"""Registry of architectures: a name maps to a builder of (generator, encoder, critic) and the paper's settings.

The entries are the networks of appendix 6.2 of the paper (Mukherjee et al., AAAI 2019), each
with the hyperparameters the paper gives for its dataset:

========================  ============  ====  =====  ======  ===================================
name                      input         zn    beta_n  beta_c  networks
========================  ============  ====  =====  ======  ===================================
``"mlp"``                 vector        30    10     10      10x_73k: FC256-LReLU x2, linear out
``"synthetic"``           vector        6     10     10      FC256-LReLU-BN x2, sigmoid out
``"pendigits"``           vector        5     10     10      FC256-LReLU-BN x2, sigmoid out
``"mnist"``               (1, 28, 28)   30    10     10      DCGAN conv-deconv, sigmoid out
``"fashion_mnist"``       (1, 28, 28)   40    0      10      the MNIST networks
``"coil20"``              (1, 32, 32)   20    10     10      4 conv / 4 deconv, sigmoid out
========================  ============  ====  =====  ======  ===================================

All share sigma = 0.1, Adam (lr 1e-4, betas (0.5, 0.9)), 5 critic steps per generator step,
gradient-penalty weight 10 and batch size 64 (section 6.2 and 2.3 of the paper).

The synthetic and Pendigits networks have batch norm in the critic too, as the paper lists;
``critic_batch_norm=False`` (an architecture option of every fully connected entry, like the
conv entries' of the same name) leaves it out of the critic only. A critic that normalises each
batch cannot see a shift of the whole batch; on the synthetic data the paper's critic lets the
generator miss the data by one (``docs/decisions/0045-critic-without-batch-norm.md``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ._conv import ConvCritic, ConvEncoder, ConvGenerator
from ._mlp import MLPCritic, MLPEncoder, MLPGenerator

__all__ = [
    "Architecture",
    "ARCHITECTURES",
    "TRAINING_KEYS",
    "register_architecture",
    "build_networks",
    "pick_architecture",
    "check_options",
]

TRAINING_KEYS = (
    "n_latent",
    "sigma",
    "beta_n",
    "beta_c",
    "gp_weight",
    "n_critic",
    "lr",
    "betas",
    "batch_size",
)
"""Keys of an entry's ``defaults`` that are training hyperparameters, not network options."""

# section 6.2: shared by every dataset of the paper
_PAPER_TRAINING = {
    "sigma": 0.1,
    "beta_n": 10.0,
    "beta_c": 10.0,
    "gp_weight": 10.0,
    "n_critic": 5,
    "lr": 1e-4,
    "betas": (0.5, 0.9),
    "batch_size": 64,
}


@dataclass(frozen=True)
class Architecture:
    """One registry entry.

    Attributes
    ----------
    build
        ``build(input_shape, n_latent, n_clusters, **options) -> (generator, encoder, critic)``;
        ``input_shape`` is an int (features) for vector entries, ``(C, H, W)`` for image entries.
    defaults
        The paper's settings for this architecture: network options (passed to ``build``) and the
        training hyperparameters of :data:`TRAINING_KEYS` (used by :class:`scgan_cluster.ClusterGAN`
        unless the caller overrides them).
    description
        One line shown in error messages and docs.
    kind
        ``"vector"`` (rows of a matrix) or ``"image"`` (``(n, C, H, W)`` batches).
    input_shape
        For image entries: the shape the paper used (for picking an entry by data shape).
    check_input
        For image entries: ``check_input((C, H, W))`` returns ``None`` when the networks can take
        that shape, else the reason why not.
    """

    build: Callable[..., tuple[nn.Module, nn.Module, nn.Module]]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    kind: str = "vector"
    input_shape: tuple[int, ...] | None = None
    check_input: Callable[[tuple[int, ...]], str | None] | None = None

    @property
    def network_defaults(self) -> dict[str, Any]:
        """The network options of :attr:`defaults`."""
        return {k: v for k, v in self.defaults.items() if k not in TRAINING_KEYS}

    @property
    def training_defaults(self) -> dict[str, Any]:
        """The training hyperparameters of :attr:`defaults`."""
        return {k: v for k, v in self.defaults.items() if k in TRAINING_KEYS}


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
    if name == "auto":
        raise ValueError("'auto' is reserved (it means: pick an architecture by the data's shape).")
    if architecture.kind not in ("vector", "image"):
        raise ValueError(f"kind must be 'vector' or 'image', got {architecture.kind!r}.")
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
    batch_norm_first: bool = False,
    output: str = "linear",
    critic_batch_norm: bool | None = None,
) -> tuple[nn.Module, nn.Module, nn.Module]:
    if not isinstance(n_features, int):
        raise ValueError(
            f"An MLP architecture takes vectors (an int number of features), got {n_features!r}."
        )
    hidden = tuple(int(h) for h in hidden)
    bn = {"leak": leak, "batch_norm": batch_norm, "batch_norm_first": batch_norm_first}
    critic_bn = {**bn, "batch_norm": batch_norm if critic_batch_norm is None else critic_batch_norm}
    return (
        MLPGenerator(n_features, n_latent, n_clusters, hidden, output=output, **bn),
        MLPEncoder(n_features, n_latent, n_clusters, hidden, **bn),
        MLPCritic(n_features, hidden, **critic_bn),
    )


def _build_conv(
    image_shape: Sequence[int],
    n_latent: int,
    n_clusters: int,
    *,
    generator_fc: tuple[int, ...],
    generator_start_channels: int,
    generator_channels: tuple[int, ...],
    generator_batch_norm: bool,
    conv_channels: tuple[int, ...],
    fc_hidden: tuple[int, ...],
    encoder_batch_norm: bool,
    critic_batch_norm: bool,
    leak: float,
    output: str,
) -> tuple[nn.Module, nn.Module, nn.Module]:
    if isinstance(image_shape, int) or len(image_shape) != 3:
        raise ValueError(
            f"A convolutional architecture takes images (C, H, W), got input shape {image_shape!r}."
        )
    trunk = {"conv_channels": conv_channels, "fc_hidden": fc_hidden, "leak": leak}
    return (
        ConvGenerator(
            image_shape,
            n_latent,
            n_clusters,
            fc_hidden=generator_fc,
            start_channels=generator_start_channels,
            up_channels=generator_channels,
            batch_norm=generator_batch_norm,
            activation="relu",
            output=output,
        ),
        ConvEncoder(image_shape, n_latent, n_clusters, batch_norm=encoder_batch_norm, **trunk),
        ConvCritic(image_shape, batch_norm=critic_batch_norm, **trunk),
    )


def _divisible_by(factor: int) -> Callable[[tuple[int, ...]], str | None]:
    def check(shape: tuple[int, ...]) -> str | None:
        if len(shape) != 3:
            return f"expects images (C, H, W), got shape {tuple(shape)}"
        if shape[1] % factor or shape[2] % factor:
            return f"height and width must be multiples of {factor}, got {shape[1]} x {shape[2]}"
        return None

    return check


register_architecture(
    "mlp",
    Architecture(
        build=_build_mlp,
        defaults={
            "hidden": (256, 256),
            "leak": 0.2,
            "batch_norm": False,
            "batch_norm_first": False,
            "critic_batch_norm": None,  # None: as batch_norm
            "output": "linear",
            **_PAPER_TRAINING,
            "n_latent": 30,
        },
        description="the paper's 10x_73k MLP: FC256-LReLU(0.2) x2 in G, E and D; linear output",
    ),
)

# Synthetic and Pendigits (appendix 6.2): "FC 256 LReLU BN" x2 in G, E and D, G ends in FC-sigmoid.
# The table lists LReLU before BN; the authors' code (pendigit/mlp.py) normalises first. We follow
# the code (batch_norm_first=True); pass batch_norm_first=False for the table's literal order.
# The synthetic table says "Input X in R^16" and "FC 16 Sigmoid", which is the Pendigits width;
# the synthetic data of section 4.1 are 100-dimensional, so the data set the width here.
# The table (and the authors' code) put BN in the critic too, and each of the critic's batches
# (real, generated, interpolated) is normalised by its own statistics; a critic that normalises
# right after its first linear layer cannot see a shift of a whole batch, so the generator may
# drift off the data by one. The paper's setting stays the default; critic_batch_norm=False
# takes BN out of the critic only (WGAN-GP's own advice), see docs/decisions/0045.
_MLP_BN = {
    "hidden": (256, 256),
    "leak": 0.2,
    "batch_norm": True,
    "batch_norm_first": True,
    "critic_batch_norm": True,
    "output": "sigmoid",
}
register_architecture(
    "synthetic",
    Architecture(
        build=_build_mlp,
        defaults={**_MLP_BN, **_PAPER_TRAINING, "n_latent": 6},
        description="the paper's synthetic-data MLP: FC256-BN-LReLU(0.2) x2 in G, E and D; sigmoid output",
    ),
)
register_architecture(
    "pendigits",
    Architecture(
        build=_build_mlp,
        defaults={**_MLP_BN, **_PAPER_TRAINING, "n_latent": 5},
        description="the paper's Pendigits MLP: FC256-BN-LReLU(0.2) x2 in G, E and D; sigmoid output",
    ),
)

# MNIST / Fashion-MNIST (appendix 6.2). G: FC1024-ReLU-BN, FC7x7x128-ReLU-BN, 4x4 upconv 64 s2
# ReLU-BN, 4x4 upconv 1 s2 sigmoid. E and D: 4x4 conv 64 s2 LReLU, 4x4 conv 128 s2 LReLU,
# FC1024 LReLU, then FC zn+K (E) or FC 1 (D); no batch norm in E and D.
_DCGAN = {
    "generator_fc": (1024,),
    "generator_start_channels": 128,
    "generator_channels": (64,),
    "generator_batch_norm": True,
    "conv_channels": (64, 128),
    "fc_hidden": (1024,),
    "encoder_batch_norm": False,
    "critic_batch_norm": False,
    "leak": 0.2,
    "output": "sigmoid",
}
register_architecture(
    "mnist",
    Architecture(
        build=_build_conv,
        defaults={**_DCGAN, **_PAPER_TRAINING, "n_latent": 30},
        description="the paper's MNIST DCGAN-style conv G / E / D (28 x 28 grey images, zn 30)",
        kind="image",
        input_shape=(1, 28, 28),
        check_input=_divisible_by(4),
    ),
)
register_architecture(
    "fashion_mnist",
    Architecture(
        build=_build_conv,
        defaults={**_DCGAN, **_PAPER_TRAINING, "n_latent": 40, "beta_n": 0.0},
        description="the paper's Fashion-MNIST setting: the MNIST networks with zn 40 and beta_n 0",
        kind="image",
        input_shape=(1, 28, 28),
        check_input=_divisible_by(4),
    ),
)

# COIL-20 / COIL-100 / CIFAR-10 (appendix 6.2). G: FC 2x2x448 ReLU-BN, 4x4 upconv 256, 128, 64 s2
# ReLU-BN, 4x4 upconv C s2 sigmoid. E and D: 4x4 conv 64 s2 LReLU, then conv 128, 256, 512 s2
# LReLU-BN, then FC zn+K (E) or FC 1 (D). The paper's table has 3 channels (CIFAR-10); COIL-20 is
# grey, so C is taken from the data. The course re-implementation (seed 002, Table 3) drops the
# batch norm of the hidden upconvs; we keep the paper's. The paper puts BN in the WGAN-GP critic;
# pass critic_batch_norm=False to leave it out.
register_architecture(
    "coil20",
    Architecture(
        build=_build_conv,
        defaults={
            "generator_fc": (),
            "generator_start_channels": 448,
            "generator_channels": (256, 128, 64),
            "generator_batch_norm": True,
            "conv_channels": (64, 128, 256, 512),
            "fc_hidden": (),
            "encoder_batch_norm": True,
            "critic_batch_norm": True,
            "leak": 0.2,
            "output": "sigmoid",
            **_PAPER_TRAINING,
            "n_latent": 20,
        },
        description="the paper's COIL-20 conv G / E / D (32 x 32 images, zn 20)",
        kind="image",
        input_shape=(1, 32, 32),
        check_input=_divisible_by(16),
    ),
)


def _check_name(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {name!r}; registered: {sorted(ARCHITECTURES)} (or 'auto')."
        )
    return ARCHITECTURES[name]


def check_options(name: str, options: dict[str, Any]) -> None:
    """Raise a ValueError for options that architecture ``name`` does not take."""
    entry = _check_name(name)
    allowed = entry.network_defaults
    unknown = set(options) - set(allowed)
    if unknown:
        extra = (
            " Training hyperparameters such as n_latent or lr are arguments of ClusterGAN."
            if unknown & set(TRAINING_KEYS)
            else ""
        )
        raise ValueError(
            f"Architecture {name!r} takes the options {sorted(allowed)}, not {sorted(unknown)}.{extra}"
        )


def build_networks(
    name: str,
    input_shape: int | Sequence[int],
    n_latent: int,
    n_clusters: int,
    **options: Any,
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """Build the (generator, encoder, critic) of architecture ``name`` with its defaults updated by ``options``.

    Parameters
    ----------
    name
        Registry key.
    input_shape
        Dimension of a data point (vector entries), or ``(C, H, W)`` (image entries).
    n_latent
        Dimension of zn.
    n_clusters
        Dimension of zc.
    **options
        Network options (see the entry's :attr:`Architecture.network_defaults`).
    """
    entry = _check_name(name)
    check_options(name, options)
    if isinstance(input_shape, numbers.Integral):
        input_shape = int(input_shape)
    if entry.kind == "image":
        if isinstance(input_shape, int) or len(input_shape) != 3:
            raise ValueError(
                f"Architecture {name!r} takes images (C, H, W), got input shape {input_shape!r}."
            )
        input_shape = tuple(int(s) for s in input_shape)
        reason = entry.check_input(input_shape) if entry.check_input else None
        if reason:
            raise ValueError(f"Architecture {name!r}: {reason}.")
    elif not isinstance(input_shape, int):
        shape = tuple(input_shape)
        if len(shape) != 1:
            raise ValueError(
                f"Architecture {name!r} takes vectors; got input shape {shape!r} (flatten images first)."
            )
        input_shape = int(shape[0])
    return entry.build(input_shape, n_latent, n_clusters, **{**entry.network_defaults, **options})


def pick_architecture(sample_shape: int | Sequence[int]) -> str:
    """Name of the registry entry for data points of shape ``sample_shape``.

    Vectors (an int, or a 1-tuple) get ``"mlp"``. Images ``(C, H, W)`` get the first image entry
    whose paper input shape has the same height and width (``(28, 28)`` -> ``"mnist"``,
    ``(32, 32)`` -> ``"coil20"``), else the first image entry that can take that shape.

    Parameters
    ----------
    sample_shape
        Shape of one data point.
    """
    if isinstance(sample_shape, numbers.Integral):
        shape: tuple[int, ...] = (int(sample_shape),)
    else:
        shape = tuple(int(s) for s in sample_shape)
    if len(shape) == 1:
        return "mlp"
    if len(shape) != 3:
        raise ValueError(
            f"Data points must be vectors (d,) or images (C, H, W); got shape {shape}."
        )
    images = {n: a for n, a in ARCHITECTURES.items() if a.kind == "image"}
    fits = [n for n, a in images.items() if a.check_input is None or a.check_input(shape) is None]
    exact = [
        n for n in fits if images[n].input_shape and tuple(images[n].input_shape[1:]) == shape[1:]
    ]
    if exact:
        return exact[0]
    if fits:
        return fits[0]
    reasons = "; ".join(f"{n}: {a.check_input(shape)}" for n, a in images.items() if a.check_input)
    raise ValueError(
        f"No registered image architecture takes images of shape {shape} ({reasons}). Resize the "
        "images, or register one with scgan_cluster.nn.register_architecture."
    )
