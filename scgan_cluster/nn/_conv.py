"""Convolutional generator, encoder and critic for images (the paper's MNIST / Fashion-MNIST and COIL nets).

Appendix 6.2 of the paper lists the layers as e.g. ``FC 1024 ReLU BN``; the order of the
activation and the batch norm inside a block is not fixed by that notation. The authors'
public TensorFlow code normalises before the activation (the DCGAN convention), and so do
these modules: ``layer -> BN -> activation``. The batch norm that follows a fully connected
layer reshaped to a feature map (``FC 7 x 7 x 128 ReLU BN``) is applied per channel of the
map, as in that code. Every 4 x 4 convolution has stride 2 and padding 1, so each one halves
(or, transposed, doubles) the height and width exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._mlp import layers_without_batch_norm

__all__ = ["ConvGenerator", "ConvEncoder", "ConvCritic"]

_OUTPUTS = {"linear": nn.Identity, "sigmoid": nn.Sigmoid}


def _check_image_shape(image_shape: Sequence[int], n_halvings: int) -> tuple[int, int, int]:
    if len(image_shape) != 3 or not all(int(s) >= 1 for s in image_shape):
        raise ValueError(f"image_shape must be (channels, height, width), got {image_shape!r}.")
    c, h, w = (int(s) for s in image_shape)
    factor = 2**n_halvings
    if h % factor or w % factor:
        raise ValueError(
            f"These networks halve the image {n_halvings} times, so height and width must be "
            f"multiples of {factor}; got {h} x {w}. Resize or pad the images, or pick another "
            "architecture."
        )
    return c, h, w


class ConvGenerator(nn.Module):
    """G: z = (zn, zc) -> image ``(n, C, H, W)``.

    ``FC h -> BN -> act`` for each width in ``fc_hidden``, then an FC layer to a
    ``start_channels x H/2^m x W/2^m`` map (BN, act), then ``m - 1`` transposed 4 x 4 convolutions
    of stride 2 with ``up_channels`` (BN, act each) and a last one to ``C`` channels followed by
    the output map, where ``m = len(up_channels) + 1``.

    Parameters
    ----------
    image_shape
        ``(C, H, W)`` of the generated images.
    n_latent
        Dimension of zn.
    n_clusters
        Dimension of zc.
    fc_hidden
        Widths of the fully connected layers before the reshape (MNIST: ``(1024,)``; COIL: none).
    start_channels
        Channels of the first feature map (MNIST: 128 at 7 x 7; COIL: 448 at 2 x 2).
    up_channels
        Channels of the hidden transposed convolutions (MNIST: ``(64,)``; COIL: ``(256, 128, 64)``).
    batch_norm
        Batch norm after every hidden layer (the paper: yes).
    activation
        ``"relu"`` (the paper's generators) or ``"lrelu"``.
    leak
        Negative slope when ``activation="lrelu"``.
    output
        ``"sigmoid"`` (the paper: pixels in [0, 1]) or ``"linear"``.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        n_latent: int,
        n_clusters: int,
        *,
        fc_hidden: Sequence[int] = (1024,),
        start_channels: int = 128,
        up_channels: Sequence[int] = (64,),
        batch_norm: bool = True,
        activation: str = "relu",
        leak: float = 0.2,
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {sorted(_OUTPUTS)}, got {output!r}.")
        if activation not in ("relu", "lrelu"):
            raise ValueError(f"activation must be 'relu' or 'lrelu', got {activation!r}.")
        n_up = len(up_channels) + 1
        c, h, w = _check_image_shape(image_shape, n_up)
        self.image_shape = (c, h, w)

        def act() -> nn.Module:
            return nn.ReLU() if activation == "relu" else nn.LeakyReLU(leak)

        layers: list[nn.Module] = []
        width = n_latent + n_clusters
        for size in fc_hidden:
            layers += [nn.Linear(width, int(size))]
            layers += [nn.BatchNorm1d(int(size))] if batch_norm else []
            layers += [act()]
            width = int(size)
        h0, w0 = h // 2**n_up, w // 2**n_up
        layers += [nn.Linear(width, start_channels * h0 * w0)]
        layers += [nn.Unflatten(1, (start_channels, h0, w0))]
        layers += [nn.BatchNorm2d(start_channels)] if batch_norm else []
        layers += [act()]
        channels = int(start_channels)
        for out in up_channels:
            layers += [nn.ConvTranspose2d(channels, int(out), 4, stride=2, padding=1)]
            layers += [nn.BatchNorm2d(int(out))] if batch_norm else []
            layers += [act()]
            channels = int(out)
        self.trunk = nn.Sequential(*layers)
        self.out = nn.ConvTranspose2d(channels, c, 4, stride=2, padding=1)
        self.activation = _OUTPUTS[output]()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.activation(self.out(self.trunk(z)))


def _conv_trunk(
    image_shape: Sequence[int],
    conv_channels: Sequence[int],
    fc_hidden: Sequence[int],
    leak: float,
    batch_norm: bool,
) -> tuple[nn.Sequential, int]:
    """4 x 4 stride-2 convolutions (LReLU; BN on all but the first when asked), flatten, FC layers."""
    c, h, w = _check_image_shape(image_shape, len(conv_channels))
    layers: list[nn.Module] = []
    channels = c
    for i, out in enumerate(conv_channels):
        layers.append(nn.Conv2d(channels, int(out), 4, stride=2, padding=1))
        if batch_norm and i > 0:
            layers.append(nn.BatchNorm2d(int(out)))
        layers.append(nn.LeakyReLU(leak))
        channels = int(out)
    layers.append(nn.Flatten(1))
    width = channels * (h // 2 ** len(conv_channels)) * (w // 2 ** len(conv_channels))
    for size in fc_hidden:
        layers += [nn.Linear(width, int(size)), nn.LeakyReLU(leak)]
        width = int(size)
    return nn.Sequential(*layers), width


class ConvEncoder(nn.Module):
    """E: image ``(n, C, H, W)`` -> (zn_hat, zc_logits); a softmax of the logits gives zc_hat.

    Parameters
    ----------
    image_shape
        ``(C, H, W)`` of the input images.
    n_latent
        Dimension of zn.
    n_clusters
        Dimension of zc.
    conv_channels
        Channels of the 4 x 4 stride-2 convolutions (MNIST: ``(64, 128)``; COIL: ``(64, 128, 256, 512)``).
    fc_hidden
        Widths of the fully connected layers after the convolutions (MNIST: ``(1024,)``; COIL: none).
    leak
        Negative slope of the LReLU activations (the paper: 0.2).
    batch_norm
        Batch norm after every convolution but the first (COIL: yes; MNIST: no).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        n_latent: int,
        n_clusters: int,
        *,
        conv_channels: Sequence[int] = (64, 128),
        fc_hidden: Sequence[int] = (1024,),
        leak: float = 0.2,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.n_latent = int(n_latent)
        self.trunk, width = _conv_trunk(image_shape, conv_channels, fc_hidden, leak, batch_norm)
        self.out = nn.Linear(width, n_latent + n_clusters)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.out(self.trunk(x))
        return h[:, : self.n_latent], h[:, self.n_latent :]


class ConvCritic(nn.Module):
    """D: image ``(n, C, H, W)`` -> R, the WGAN critic (no sigmoid); same trunk as :class:`ConvEncoder`.

    Parameters
    ----------
    image_shape
        ``(C, H, W)`` of the input images.
    conv_channels
        Channels of the 4 x 4 stride-2 convolutions.
    fc_hidden
        Widths of the fully connected layers after the convolutions.
    leak
        Negative slope of the LReLU activations.
    batch_norm
        Batch norm after every convolution but the first.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        *,
        conv_channels: Sequence[int] = (64, 128),
        fc_hidden: Sequence[int] = (1024,),
        leak: float = 0.2,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.trunk, width = _conv_trunk(image_shape, conv_channels, fc_hidden, leak, batch_norm)
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(x)).squeeze(-1)

    def penalty_layers(self) -> list[nn.Module] | None:
        """The layers whose composition is ``forward`` (before the squeeze).

        Used by the training loop's explicit gradient penalty; ``None`` with batch-norm.
        """
        return layers_without_batch_norm([*self.trunk, self.out])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden layer phi(x) (the paper's "GAN with Disc. phi" baseline)."""
        return self.trunk(x)
