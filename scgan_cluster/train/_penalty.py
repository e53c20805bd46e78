"""The WGAN-GP penalty of piecewise-linear critics through an explicit input gradient.

For a critic that is a chain of linear maps (``Linear``, ``Conv2d``) and ReLU / LeakyReLU
activations, the gradient of ``sum D(x)`` with respect to ``x`` is a product of the transposed
linear maps and of the activations' slope masks. Writing that product out (one vector-Jacobian
product per layer) gives the penalty as a first-order differentiable function of the weights, so
one ordinary backward pass replaces autograd's double backward. The slope masks are piecewise
constant in the weights, exactly as autograd's double backward treats them, so the penalty and its
gradient are the same numbers up to float rounding (checked in the tests).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["penalty_layers", "explicit_input_gradient", "SUPPORTED_LAYERS"]

_ACTIVATIONS = (nn.LeakyReLU, nn.ReLU)
_PASSTHROUGH = (nn.Identity, nn.Dropout)
SUPPORTED_LAYERS = (nn.Linear, nn.Conv2d, nn.Flatten, *_ACTIVATIONS, nn.Identity)


def penalty_layers(critic: nn.Module) -> list[nn.Module] | None:
    """The critic as a list of layers for :func:`explicit_input_gradient`, or ``None``.

    A critic opts in by defining a method ``penalty_layers()`` returning the layers whose
    composition, followed by dropping the last (size-1) axis, equals its ``forward``; ``None`` is
    returned when it does not, or when a layer is of a kind not handled here (then the loop falls
    back to autograd's double backward).

    Parameters
    ----------
    critic
        The critic module.
    """
    get = getattr(critic, "penalty_layers", None)
    if get is None:
        return None
    layers = get()
    if layers is None:
        return None
    layers = list(layers)
    for layer in layers:
        if isinstance(layer, nn.Dropout) or not (
            isinstance(layer, SUPPORTED_LAYERS) or hasattr(layer, "input_vjp")
        ):
            return None
        if isinstance(layer, nn.Conv2d) and (
            layer.padding_mode != "zeros" or isinstance(layer.padding, str)
        ):
            return None
    return layers


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The lower-precision dtype of an autocast region active on ``device``, else ``None``."""
    if device.type in ("cpu", "cuda") and torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return None


def explicit_input_gradient(layers: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """``d sum(D(x)) / dx`` for the piecewise-linear critic ``layers``, differentiable in the weights.

    ``x`` itself is not differentiated (the forward pass that finds the slope masks runs without
    a graph).

    Parameters
    ----------
    layers
        From :func:`penalty_layers`.
    x
        Points at which the gradient is taken.
    """
    saved: list = []
    with torch.no_grad():
        h = x
        for layer in layers:
            if isinstance(layer, nn.LeakyReLU):
                saved.append(torch.where(h > 0, 1.0, layer.negative_slope).to(h.dtype))
            elif isinstance(layer, nn.ReLU):
                saved.append((h > 0).to(h.dtype))
            elif isinstance(layer, (nn.Flatten, nn.Conv2d)) or hasattr(layer, "input_vjp"):
                saved.append(h.shape)
            else:
                saved.append(None)
            h = layer(h)
    g: torch.Tensor | None = None  # gradient with respect to the current layer's output
    out_shape = h.shape
    for layer, s in zip(reversed(layers), reversed(saved), strict=True):
        if isinstance(layer, _ACTIVATIONS):
            g = s if g is None else g * s
        elif isinstance(layer, nn.Flatten):
            g = g.reshape(s) if g is not None else None
        elif isinstance(layer, nn.Identity):
            continue
        elif isinstance(layer, nn.Linear):
            w = layer.weight  # (out, in)
            g = (torch.ones(out_shape, dtype=w.dtype, device=w.device) if g is None else g) @ w
        elif isinstance(layer, nn.Conv2d):
            w = layer.weight
            if g is None:
                g = torch.ones(out_shape, dtype=w.dtype, device=w.device)
            low = _autocast_dtype(w.device)  # conv2d_input is not covered by autocast
            if low is not None:
                w, g = w.to(low), g.to(low)
            g = torch.nn.grad.conv2d_input(
                s,
                w,
                g,
                stride=layer.stride,
                padding=layer.padding,
                dilation=layer.dilation,
                groups=layer.groups,
            )
        else:  # a layer providing its own vector-Jacobian product (ensemble layers)
            g = layer.input_vjp(g, out_shape, s)
    if g is None:
        raise ValueError("The critic has no linear layer.")
    return g
