"""Hand-written gradients of ClusterGAN's two losses for fully connected networks (no autograd).

For networks that are chains of linear layers (``nn.Linear`` or the ensembles'
:class:`~scgan_cluster.nn.EnsembleLinear`) and elementwise activations (LeakyReLU, ReLU,
Sigmoid, Identity) both training steps can be written out as a handful of matrix products:

* **Critic step** (WGAN-GP): one forward pass over ``[real, fake]``; the critic's values at the
  interpolates ``x_hat = eps * real + (1 - eps) * fake`` are not needed, only the activations'
  slope masks there, and since the first layer is affine its output at ``x_hat`` is
  ``eps * a(real) + (1 - eps) * a(fake)``, which saves the first (widest) matrix product of that
  pass. The input gradient ``grad_x D(x_hat)`` is the product of the transposed weights and the
  slope masks (as in :func:`~scgan_cluster.train.explicit_input_gradient`), and the penalty's
  gradient with respect to each weight matrix is again a matrix product; it is summed with the
  Wasserstein term's gradient in one product per layer (the two batches concatenated).
* **Generator / encoder step**: forward G, E and D, then the gradients of
  ``-E D(G(z)) + beta_n E||zn - E_n||^2 + beta_c E CE(k, E_c)`` back through E, D (input gradient
  only, the critic is fixed) and G. With the reconstruction term (``beta_r > 0``, not in the
  paper) E also encodes a real batch, G decodes ``[zn_hat, softmax(zc_logits)]`` of it in the
  same pass as ``G(z)``, and the squared error's gradient goes back through G, the softmax and E.

These are the same numbers as autograd's (up to float rounding; the tests compare both in float64)
without building a graph. With ``dtype=torch.bfloat16`` the matrix products (and the
activations between them) run in bfloat16 from bfloat16 copies of the weights made once per step,
while the parameters, their gradients, the losses, the penalty's norm and Adam stay in float32
(on CPUs with AMX / AVX-512 BF16 the products are 2-3x faster).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from scgan_cluster.nn import (
    EnsembleEncoder,
    EnsembleGenerator,
    EnsembleLinear,
    MLPEncoder,
    MLPGenerator,
)

from ._penalty import penalty_layers

__all__ = ["ManualSteps", "chain_parameters", "compiled_steps", "mlp_chain"]

_LINEAR = (nn.Linear, EnsembleLinear)
_ACTIVATIONS = (nn.LeakyReLU, nn.ReLU, nn.Sigmoid)
_GENERATORS = (MLPGenerator, EnsembleGenerator)
_ENCODERS = (MLPEncoder, EnsembleEncoder)
_HALF = (torch.bfloat16, torch.float16)


def mlp_chain(module: nn.Module, role: str) -> list[nn.Module] | None:
    """``module`` as a list of layers for :class:`ManualSteps`, or ``None`` when it is not such a chain.

    Parameters
    ----------
    module
        A generator (:class:`~scgan_cluster.nn.MLPGenerator` or its ensemble), encoder
        (:class:`~scgan_cluster.nn.MLPEncoder` or its ensemble) or critic (one defining
        ``penalty_layers()``, see :func:`~scgan_cluster.train.penalty_layers`).
    role
        ``"generator"``, ``"encoder"`` or ``"critic"``.
    """
    if role == "generator":
        if type(module) not in _GENERATORS:
            return None
        layers = [*module.trunk, module.out, module.activation]
    elif role == "encoder":
        if type(module) not in _ENCODERS:
            return None
        layers = [*module.trunk, module.out]
    else:
        layers = penalty_layers(module)
        if layers is None or any(isinstance(m, nn.Sigmoid) for m in layers):
            return None
    if not layers or not isinstance(layers[0], _LINEAR):
        return None
    if not all(isinstance(m, (*_LINEAR, *_ACTIVATIONS, nn.Identity)) for m in layers):
        return None
    return layers


# layers with fewer inputs or outputs than this keep the parameters' dtype under bfloat16: their
# products are too small to gain from it (a width-1 output even loses, as bf16 matrix-vector
# products have no fast kernel on CPU), and float32 spares the rounding
_MIN_CAST_WIDTH = 64


def _full(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is a half-precision tensor (losses and norms are taken in float32)."""
    return t.float() if t.dtype in _HALF else t


def _weights(layers: list[nn.Module], dtype: torch.dtype | None) -> list:
    """Per layer: ``(weight, bias)`` of a linear layer (cast to ``dtype`` if wide), else ``None``."""
    out = []
    for m in layers:
        if isinstance(m, _LINEAR):
            w, b = m.weight.detach(), None if m.bias is None else m.bias.detach()
            if dtype is not None and w.dtype != dtype and min(w.shape[-2:]) >= _MIN_CAST_WIDTH:
                w = w.to(dtype)
                b = None if b is None else b.to(dtype)
            out.append((w, b))
        else:
            out.append(None)
    return out


def chain_parameters(layers: list[nn.Module]) -> list[nn.Parameter]:
    """The parameters of a chain's linear layers in chain order (weight, then bias if any).

    This is the order of the flat parameter buffers and flat gradients of
    :meth:`ManualSteps.critic_flat` and :meth:`ManualSteps.generator_flat`.
    """
    out = []
    for m in layers:
        if isinstance(m, _LINEAR):
            out.append(m.weight)
            if m.bias is not None:
                out.append(m.bias)
    return out


def _flat_weights(layers: list[nn.Module], flat: torch.Tensor, cast: torch.Tensor | None) -> list:
    """As :func:`_weights`, but as views of ``flat`` (the chain's parameters in chain order).

    ``cast``: ``flat`` already converted to the compute dtype (one conversion for all layers);
    wide layers take their weights from it, the others from ``flat``.
    """
    out, offset = [], 0
    for m in layers:
        if not isinstance(m, _LINEAR):
            out.append(None)
            continue
        shape = m.weight.shape
        n = m.weight.numel()
        src = flat if cast is None or min(shape[-2:]) < _MIN_CAST_WIDTH else cast
        w = src[offset : offset + n].view(shape)
        offset += n
        b = None
        if m.bias is not None:
            b = src[offset : offset + m.bias.numel()].view(m.bias.shape)
            offset += m.bias.numel()
        out.append((w, b))
    return out


def _linear(layer: nn.Module, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None):
    """``layer``'s affine map with weights ``w``, ``b`` (``b=None``: the linear part only)."""
    x = x.to(w.dtype)
    if isinstance(layer, EnsembleLinear):  # w: (R, in, out)
        return torch.bmm(x, w) if b is None else torch.baddbmm(b, x, w)
    return F.linear(x, w, b)  # w: (out, in)


def _linear_t(layer: nn.Module, g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Gradient with respect to the input of ``layer`` from the gradient ``g`` at its output."""
    g = g.to(w.dtype)
    if isinstance(layer, EnsembleLinear):
        return torch.bmm(g, w.transpose(1, 2))
    return g @ w


def _weight_grad(
    layer: nn.Module,
    g: torch.Tensor,
    x: torch.Tensor,
    w: torch.Tensor,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gradient of ``layer.weight`` from output gradients ``g`` and inputs ``x`` (rows summed).

    Computed in the dtype of ``w`` (the weights the layer ran with); written into ``out`` if
    given (directly by the product when the dtypes agree, else converted).
    """
    g, x = g.to(w.dtype), x.to(w.dtype)
    direct = out if out is not None and out.dtype == w.dtype else None
    if isinstance(layer, EnsembleLinear):
        res = torch.bmm(x.transpose(1, 2), g, out=direct)
    else:
        res = torch.mm(g.t(), x, out=direct)
    if out is not None and direct is None:
        return out.copy_(res)
    return res


def _weight_grad_add(layer: nn.Module, gw: torch.Tensor, g: torch.Tensor, x: torch.Tensor) -> None:
    """Add the weight gradient from ``g`` and ``x`` to ``gw`` in place (in ``gw``'s dtype)."""
    g, x = g.to(gw.dtype), x.to(gw.dtype)
    if isinstance(layer, EnsembleLinear):
        gw.baddbmm_(x.transpose(1, 2), g)
    else:
        gw.addmm_(g.t(), x)


def _weight_grad_sum(
    layer: nn.Module, parts: list[tuple], w: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Weight gradient summed over ``parts``, each ``(gradient at the output, input)``.

    Half-precision weights take one product over the parts joined along the batch (float32
    accumulation); the others accumulate a product per part into the first (cheaper than
    joining). ``w`` and ``out`` as in :func:`_weight_grad`.
    """
    if len(parts) > 1 and w.dtype in _HALF:
        parts = [tuple(torch.cat([p[j].to(w.dtype) for p in parts], dim=-2) for j in (0, 1))]
    gw = _weight_grad(layer, parts[0][0], parts[0][1], w, out)
    for g, x in parts[1:]:
        _weight_grad_add(layer, gw, g, x)
    return gw


def _bias_grad(layer: nn.Module, g: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(layer, EnsembleLinear):
        return torch.sum(g, 1, keepdim=True, dtype=layer.bias.dtype, out=out)
    return torch.sum(g, 0, dtype=layer.bias.dtype, out=out)


def _activation(layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, nn.LeakyReLU):
        return F.leaky_relu(h, layer.negative_slope)
    if isinstance(layer, nn.ReLU):
        return F.relu(h)
    return torch.sigmoid(h)


def _activation_backward(layer: nn.Module, g: torch.Tensor, saved: torch.Tensor) -> torch.Tensor:
    """``g`` times the activation's derivative (``saved``: its input, or for Sigmoid its output)."""
    g = g.to(saved.dtype)
    if isinstance(layer, nn.LeakyReLU):
        return torch.ops.aten.leaky_relu_backward(g, saved, layer.negative_slope, False)
    if isinstance(layer, nn.ReLU):
        return torch.ops.aten.threshold_backward(g, saved, 0)
    return torch.ops.aten.sigmoid_backward(g, saved)


def _forward(layers: list[nn.Module], weights: list, x: torch.Tensor):
    """Output of the chain and, per layer, what its backward needs (input; Sigmoid: output)."""
    saved: list[torch.Tensor | None] = []
    h = x
    for layer, wb in zip(layers, weights, strict=True):
        if wb is not None:
            saved.append(h)
            h = _linear(layer, h, *wb)
        elif isinstance(layer, (nn.LeakyReLU, nn.ReLU)):
            saved.append(h)
            h = _activation(layer, h)
        elif isinstance(layer, nn.Sigmoid):
            h = torch.sigmoid(h)
            saved.append(h)
        else:
            saved.append(None)
    return h, saved


def _backward(
    layers: list[nn.Module], weights: list, saved: list, g: torch.Tensor, input_grad: bool
):
    """Gradients at the output of every linear layer (dict by index) and, optionally, at the input."""
    at_output: dict[int, torch.Tensor] = {}
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if weights[i] is not None:
            at_output[i] = g
            if i == 0 and not input_grad:
                return at_output, None
            g = _linear_t(layer, g, weights[i][0])
        elif saved[i] is not None:
            g = _activation_backward(layer, g, saved[i])
    return at_output, g


def _grad_list(layers: list[nn.Module], grads: dict[int, tuple]) -> list[torch.Tensor]:
    """Gradients in the order of :func:`chain_parameters` (weight gradients possibly half)."""
    out = []
    for i in sorted(grads):
        gw, gb = grads[i]
        out.append(gw)
        if layers[i].bias is not None:
            out.append(gb)
    return out


def _set_grads(layers: list[nn.Module], grads: list[torch.Tensor]) -> None:
    for p, g in zip(chain_parameters(layers), grads, strict=True):
        p.grad = g.to(p.dtype)


class ManualSteps:
    """One critic step and one generator / encoder step of ClusterGAN with hand-written gradients.

    Two ways to use it. :meth:`critic_step` / :meth:`generator_step` read the modules' weights
    and write the gradients into the parameters' ``.grad`` (replacing what was there), for the
    caller's optimizers. :meth:`critic_flat` / :meth:`generator_flat` / :meth:`generate_flat`
    are pure tensor functions of flat parameter buffers (the chains' parameters in the order of
    :func:`chain_parameters`, as kept by :class:`~scgan_cluster.train._flat.FlatAdam`) that
    return one flat gradient (optionally through ``torch.compile``, see :func:`compiled_steps`).
    The training loop's step objects use them: :class:`~scgan_cluster.train._steps.ManualStep`
    the former, :class:`~scgan_cluster.train._steps.FlatStep` the latter. Shapes follow the
    training loop: ``lead + (batch, features)`` with ``lead`` empty for one model and ``(R,)``
    for an ensemble of R.

    Parameters
    ----------
    generator, encoder, critic
        The networks; the critic is required to be a chain (see :func:`mlp_chain`), the generator
        and encoder only for the generator step and generation.
    dtype
        Compute dtype of the matrix products (``None``: the parameters' own dtype).
    """

    def __init__(
        self,
        generator: nn.Module,
        encoder: nn.Module,
        critic: nn.Module,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.g_layers = mlp_chain(generator, "generator")
        self.e_layers = mlp_chain(encoder, "encoder")
        self.d_layers = mlp_chain(critic, "critic")
        if self.d_layers is None:
            raise ValueError("ManualSteps needs a critic made of linear layers and activations.")
        self.n_latent = getattr(encoder, "n_latent", None)
        self.dtype = dtype
        self._g_weights: list | None = None
        # G's share of a flat G / E buffer (G's parameters come first)
        self._n_g = (
            0 if self.g_layers is None else sum(p.numel() for p in chain_parameters(self.g_layers))
        )

    @property
    def handles_generator(self) -> bool:
        """Whether the generator step is available (G and E are chains too)."""
        return self.g_layers is not None and self.e_layers is not None

    # --- module weights, gradients into .grad ---------------------------------------------

    def refresh_generator(self) -> None:
        """Take (and cast) G's current weights; call after every update of G."""
        self._g_weights = _weights(self.g_layers, self.dtype)

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)`` in the compute dtype with the weights of the last :meth:`refresh_generator`."""
        h = z if self.dtype is None else z.to(self.dtype)
        return _forward(self.g_layers, self._g_weights, h)[0]

    @torch.no_grad()
    def critic_step(
        self, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor, gp_weight: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gradients of ``gp_weight * GP - (E D(real) - E D(fake))`` into the critic's ``.grad``.

        Parameters
        ----------
        real, fake
            ``lead + (batch, features)``, in the compute dtype.
        eps
            ``lead + (batch, 1)`` interpolation weights.
        gp_weight
            Penalty coefficient.

        Returns
        -------
        The loss, the Wasserstein estimate and the penalty (float32 or the parameters' dtype),
        one value per replica.
        """
        weights = _weights(self.d_layers, self.dtype)
        grads, *values = self._critic(weights, real, fake, eps, gp_weight)
        _set_grads(self.d_layers, grads)
        return tuple(values)

    @torch.no_grad()
    def generator_step(
        self,
        z: torch.Tensor,
        zn: torch.Tensor,
        k: torch.Tensor,
        beta_n: float,
        beta_c: float,
        real: torch.Tensor | None = None,
        beta_r: float = 0.0,
    ) -> tuple[torch.Tensor, ...]:
        """Gradients of the G / E objective into G's and E's ``.grad`` (see ``generator_encoder_loss``).

        Uses G's weights of the last :meth:`refresh_generator`. With a batch of ``real``
        samples (``lead + (batch, features)``, float32 preferred: the reconstruction error is
        taken against it) and ``beta_r > 0`` the objective also has ``beta_r`` times
        :func:`~scgan_cluster.train.reconstruction_loss` of that batch.

        Returns
        -------
        The adversarial, zn and zc terms, one value per replica; with the reconstruction term
        also its value (before ``beta_r``).
        """
        e_weights = _weights(self.e_layers, self.dtype)
        d_weights = _weights(self.d_layers, self.dtype)
        g_grads, e_grads, *values = self._generator(
            self._g_weights,
            e_weights,
            d_weights,
            z,
            zn,
            k,
            beta_n,
            beta_c,
            real=real,
            beta_r=beta_r,
        )
        _set_grads(self.e_layers, e_grads)
        _set_grads(self.g_layers, g_grads)
        return tuple(values)

    # --- flat buffers, pure functions -----------------------------------------------------
    # Not decorated with torch.no_grad: its wrapper is one code object shared by every decorated
    # function, so torch.compile would count all their compiled versions against one recompile
    # limit (8). They record no autograd graph as long as their inputs do not require gradients,
    # which the loop's flat buffers and batches do not.

    def cast(self, flat: torch.Tensor) -> torch.Tensor | None:
        """``flat`` converted to the compute dtype, or ``None`` when no conversion is needed.

        The flat step functions take this as ``cast`` (one conversion of a whole buffer); a
        caller that keeps it while the buffer is unchanged saves converting it again (the
        training loop converts G / E once per iteration and D once per update).
        """
        return None if self.dtype is None or flat.dtype == self.dtype else flat.to(self.dtype)

    def _cast_of(self, flat: torch.Tensor, cast: torch.Tensor | None) -> torch.Tensor | None:
        """The caller's ``cast`` of ``flat`` if given, else a fresh one."""
        return self.cast(flat) if cast is None else cast

    def _ge_weights(self, flat_ge: torch.Tensor, cast: torch.Tensor | None = None) -> tuple:
        """G's and E's ``(weight, bias)`` views of ``flat_ge`` (wide layers from ``cast`` if given)."""
        n_g = self._n_g
        g_cast, e_cast = (None, None) if cast is None else (cast[:n_g], cast[n_g:])
        return (
            _flat_weights(self.g_layers, flat_ge[:n_g], g_cast),
            _flat_weights(self.e_layers, flat_ge[n_g:], e_cast),
        )

    def generate_flat(
        self, flat_ge: torch.Tensor, z: torch.Tensor, cast: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``G(z)`` in the compute dtype, G's weights from ``flat_ge`` (G's then E's parameters).

        ``cast``: :meth:`cast` of ``flat_ge`` if the caller has it (else it is made here).
        """
        g_weights, _ = self._ge_weights(flat_ge, self._cast_of(flat_ge, cast))
        h = z if self.dtype is None else z.to(self.dtype)
        return _forward(self.g_layers, g_weights, h)[0]

    def critic_flat(
        self,
        flat_d: torch.Tensor,
        real: torch.Tensor,
        fake: torch.Tensor,
        eps: torch.Tensor,
        gp_weight: float,
        out: torch.Tensor | None = None,
        cast: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """As :meth:`critic_step` with the critic's parameters in ``flat_d``.

        ``out``: a buffer like ``flat_d`` to write the gradient into (each weight gradient
        straight from its matrix product); else the gradients are concatenated. ``cast``:
        :meth:`cast` of ``flat_d`` if the caller has it.

        Returns
        -------
        The flat gradient (``flat_d``'s dtype and layout), the loss, the Wasserstein estimate
        and the penalty.
        """
        weights = _flat_weights(self.d_layers, flat_d, self._cast_of(flat_d, cast))
        outs = None if out is None else _flat_weights(self.d_layers, out, None)
        grads, *values = self._critic(weights, real, fake, eps, gp_weight, outs)
        return (_concat(grads, flat_d.dtype) if out is None else out, *values)

    def generator_flat(
        self,
        flat_ge: torch.Tensor,
        flat_d: torch.Tensor,
        z: torch.Tensor,
        zn: torch.Tensor,
        k: torch.Tensor,
        beta_n: float,
        beta_c: float,
        out: torch.Tensor | None = None,
        ge_cast: torch.Tensor | None = None,
        d_cast: torch.Tensor | None = None,
        real: torch.Tensor | None = None,
        beta_r: float = 0.0,
    ) -> tuple[torch.Tensor, ...]:
        """As :meth:`generator_step` with G's then E's parameters in ``flat_ge``, D's in ``flat_d``.

        ``out``: as in :meth:`critic_flat`, a buffer like ``flat_ge``. ``ge_cast``, ``d_cast``:
        :meth:`cast` of ``flat_ge`` and ``flat_d`` if the caller has them. ``real``, ``beta_r``:
        the reconstruction term, as in :meth:`generator_step`.

        Returns
        -------
        The flat gradient of G and E (``flat_ge``'s layout), the adversarial, zn and zc terms
        (and the reconstruction term's value when it is on).
        """
        g_weights, e_weights = self._ge_weights(flat_ge, self._cast_of(flat_ge, ge_cast))
        d_weights = _flat_weights(self.d_layers, flat_d, self._cast_of(flat_d, d_cast))
        outs = (None, None) if out is None else self._ge_weights(out)
        g_grads, e_grads, *values = self._generator(
            g_weights, e_weights, d_weights, z, zn, k, beta_n, beta_c, outs, real, beta_r
        )
        return (_concat(g_grads + e_grads, flat_ge.dtype) if out is None else out, *values)

    # --- the two steps ----------------------------------------------------------------------

    def _critic(self, weights: list, real, fake, eps, gp_weight: float, outs: list | None = None):
        layers, n = self.d_layers, len(self.d_layers)
        dt = real.dtype
        batch = real.shape[-2]
        joint = torch.cat([real, fake], dim=-2)
        a = _linear(layers[0], joint, *weights[0])  # the first layer (linear, see mlp_chain)
        out, saved = _forward(layers[1:], weights[1:], a)
        saved = [joint, *saved]
        d_real, d_fake = out.squeeze(-1).split(batch, dim=-1)
        wdist = _full(d_real).mean(-1) - _full(d_fake).mean(-1)
        # activations at x_hat: the first layer is affine, so its output there interpolates the
        # outputs at real and fake; later layers (only up to the last activation) are computed
        a_real, a_fake = a.split(batch, dim=-2)
        e = eps.to(a.dtype)
        h = e * a_real + (1.0 - e) * a_fake
        acts = [i for i in range(n) if weights[i] is None]
        last_act = max(acts) if acts else 0
        pre: list[torch.Tensor | None] = [None] * n
        for i in range(1, last_act + 1):
            layer = layers[i]
            if weights[i] is not None:
                h = _linear(layer, h, *weights[i])
            elif isinstance(layer, _ACTIVATIONS):
                pre[i] = h
                h = _activation(layer, h)
        # input gradient of sum D at x_hat: v[i] is the gradient at the output of linear layer i
        v: dict[int, torch.Tensor] = {}
        last_linear = max(i for i in range(n) if weights[i] is not None)
        top_dtype = weights[last_linear][0].dtype
        g = torch.ones((*real.shape[:-1], 1), dtype=top_dtype, device=real.device)
        for i in range(n - 1, -1, -1):
            if weights[i] is not None:
                v[i] = g
                g = _linear_t(layers[i], g, weights[i][0])
            elif pre[i] is not None:
                g = _activation_backward(layers[i], g, pre[i])
        grad_x = _full(g)
        norm = grad_x.norm(2, dim=-1)
        gp = ((norm - 1.0) ** 2).mean(-1)
        coef = torch.where(norm > 0, (norm - 1.0) / norm, torch.zeros_like(norm))
        du = (coef.unsqueeze(-1) * grad_x * (2.0 * gp_weight / batch)).to(dt)
        # gradient of -wdist at the output of every linear layer over the joint batch
        dd = torch.full((*joint.shape[:-1], 1), 1.0 / batch, dtype=top_dtype, device=real.device)
        dd[..., :batch, :] = -1.0 / batch
        da, _ = _backward(layers, weights, saved, dd, input_grad=False)
        # weight gradient of each linear layer: Wasserstein part (joint batch) and penalty part
        # (v times the penalty's gradient flowing up the input-gradient chain) in one product
        grads = {}
        for i in range(n):
            layer = layers[i]
            if weights[i] is None:
                if pre[i] is not None:
                    du = _activation_backward(layer, du, pre[i])
                continue
            w = weights[i][0]
            w_out, b_out = (None, None) if outs is None else outs[i]
            gw = _weight_grad_sum(layer, [(da[i], saved[i]), (v[i], du)], w, w_out)
            gb = None if layer.bias is None else _bias_grad(layer, da[i], b_out)
            grads[i] = (gw, gb)
            if i < last_linear:
                du = _linear(layer, du, weights[i][0], None)
        return _grad_list(layers, grads), gp_weight * gp - wdist, wdist, gp

    def _generator(
        self,
        g_weights,
        e_weights,
        d_weights,
        z,
        zn,
        k,
        beta_n,
        beta_c,
        outs=(None, None),
        real=None,
        beta_r=0.0,
    ):
        h = z if self.dtype is None else z.to(self.dtype)
        batch = z.shape[-2]
        recon = real is not None and beta_r > 0
        if recon:
            # E's code of the real batch, fed to G as [zn_hat, softmax(logits)]; G runs once over
            # [z, z_hat] (one product per layer for both batches, and for their weight gradients)
            real_c = real if self.dtype is None else real.to(self.dtype)
            enc_r, er_saved = _forward(self.e_layers, e_weights, real_c)
            enc_r = _full(enc_r)
            p_r = torch.softmax(enc_r[..., self.n_latent :], dim=-1)
            z_hat = torch.cat([enc_r[..., : self.n_latent], p_r], dim=-1)
            h = torch.cat([h, z_hat.to(h.dtype)], dim=-2)
        out_g, g_saved = _forward(self.g_layers, g_weights, h)
        fake = out_g[..., :batch, :] if recon else out_g
        enc, e_saved = _forward(self.e_layers, e_weights, fake)
        d_out, d_saved = _forward(self.d_layers, d_weights, fake)
        enc = _full(enc)
        zn_hat, logits = enc[..., : self.n_latent], enc[..., self.n_latent :]
        adversarial = -_full(d_out.squeeze(-1)).mean(-1)
        diff = zn_hat - zn
        zn_loss = diff.pow(2).sum(-1).mean(-1)
        log_p = torch.log_softmax(logits, dim=-1)
        zc_loss = -log_p.gather(-1, k.unsqueeze(-1)).squeeze(-1).mean(-1)
        d_zn = diff * (2.0 * beta_n / batch)
        d_logits = log_p.exp()
        d_logits = d_logits.scatter_add(
            -1, k.unsqueeze(-1), torch.full_like(d_logits[..., :1], -1.0)
        ) * (beta_c / batch)
        d_enc = torch.cat([d_zn, d_logits], dim=-1)
        e_grads, d_fake_e = _backward(self.e_layers, e_weights, e_saved, d_enc, input_grad=True)
        d_top = torch.full(
            (*fake.shape[:-1], 1),
            -1.0 / batch,
            dtype=[wb for wb in d_weights if wb is not None][-1][0].dtype,
            device=fake.device,
        )
        _, d_fake_d = _backward(self.d_layers, d_weights, d_saved, d_top, input_grad=True)
        d_out_g = d_fake_e + d_fake_d
        if recon:
            residual = _full(out_g[..., batch:, :]) - _full(real)
            d_out_g = torch.cat(
                [d_out_g, (residual * (2.0 * beta_r / batch)).to(d_out_g.dtype)], dim=-2
            )
        g_grads, d_h = _backward(self.g_layers, g_weights, g_saved, d_out_g, input_grad=recon)
        e_parts = [(e_grads, e_saved)]
        if recon:
            # back through the softmax and E on the real batch (E's gradients of both batches
            # are summed below)
            d_z_hat = _full(d_h[..., batch:, :])
            d_p = d_z_hat[..., self.n_latent :]
            d_logits_r = p_r * (d_p - (d_p * p_r).sum(-1, keepdim=True))
            d_enc_r = torch.cat([d_z_hat[..., : self.n_latent], d_logits_r], dim=-1)
            e_grads_r, _ = _backward(self.e_layers, e_weights, er_saved, d_enc_r, input_grad=False)
            e_parts.append((e_grads_r, er_saved))
        g_views = [(None, None)] * len(self.g_layers) if outs[0] is None else outs[0]
        g_list = _grad_list(
            self.g_layers,
            {
                i: _layer_grads(self.g_layers[i], [(g, g_saved[i])], g_weights[i][0], g_views[i])
                for i, g in g_grads.items()
            },
        )
        e_views = [(None, None)] * len(self.e_layers) if outs[1] is None else outs[1]
        e_list = _grad_list(
            self.e_layers,
            {
                i: _layer_grads(
                    self.e_layers[i],
                    [(at_out[i], saved[i]) for at_out, saved in e_parts],
                    e_weights[i][0],
                    e_views[i],
                )
                for i in e_grads
            },
        )
        values = (adversarial, zn_loss, zc_loss)
        if recon:
            values += (residual.pow(2).sum(-1).mean(-1),)
        return g_list, e_list, *values


def _layer_grads(layer: nn.Module, parts: list[tuple], w: torch.Tensor, views: tuple) -> tuple:
    """Weight and bias gradients of a linear layer summed over ``parts``.

    ``parts``: ``(gradient at the output, input)`` of each batch the layer saw; ``w``: the
    weights it ran with; ``views``: where to write ``(weight, bias)`` gradients (or ``None``s).
    """
    w_out, b_out = views
    gw = _weight_grad_sum(layer, parts, w, w_out)
    if layer.bias is None:
        return gw, None
    gb = _bias_grad(layer, parts[0][0], b_out)
    for g, _ in parts[1:]:
        gb += _bias_grad(layer, g)
    return gw, gb


def _layer_signature(m: nn.Module) -> tuple:
    if isinstance(m, _LINEAR):
        bias = None if m.bias is None else (tuple(m.bias.shape), m.bias.dtype)
        return (type(m), tuple(m.weight.shape), m.weight.dtype, m.weight.device, bias)
    return (type(m), getattr(m, "negative_slope", None))


def _without_values(layers: list[nn.Module] | None) -> list[nn.Module] | None:
    """Copies of ``layers`` with the same structure but parameters on the meta device (no data).

    What the flat step functions read of a layer (type, shapes, dtypes, slope) survives; the
    copies share no tensor with, and hold no reference to, the original layers.
    """
    if layers is None:
        return None
    out = []
    for m in layers:
        memo = {
            id(p): nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=False)
            for p in m.parameters()
        }
        out.append(copy.deepcopy(m, memo))
    return out


# compiled flat step functions, one set per network structure (see compiled_steps); each set
# belongs to a ManualSteps over meta-device copies of the layers, so the networks it was first
# made for can be freed
_COMPILED: dict[tuple, tuple] = {}


def compiled_steps(steps: ManualSteps) -> tuple:
    """The flat step functions of ``steps`` through ``torch.compile``, one set per structure.

    Returns compiled :meth:`~ManualSteps.generate_flat`, :meth:`~ManualSteps.critic_flat` and
    :meth:`~ManualSteps.generator_flat`. The flat functions read only the structure of the
    layers (types, shapes, dtypes, slopes) from the modules, the values come from the flat
    buffers; so networks of the same structure share one compiled set per process (a new set
    per call of the training loop would recompile, and torch's recompile limit would then fall
    back to eager code). The set is compiled for a copy of ``steps`` whose layers keep their
    structure but no parameter data (meta device), so the cache keeps neither the networks
    alive nor their memory.
    """
    key = (
        tuple(
            _layer_signature(m)
            for chain in (steps.g_layers, steps.e_layers, steps.d_layers)
            for m in chain
        ),
        steps.n_latent,
        steps.dtype,
    )
    if key not in _COMPILED:
        twin = copy.copy(steps)
        twin.g_layers, twin.e_layers, twin.d_layers = (
            _without_values(chain) for chain in (steps.g_layers, steps.e_layers, steps.d_layers)
        )
        twin._g_weights = None
        _COMPILED[key] = tuple(
            torch.compile(f, dynamic=False)
            for f in (twin.generate_flat, twin.critic_flat, twin.generator_flat)
        )
    return _COMPILED[key]


def _concat(grads: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """The gradients flattened into one tensor of ``dtype`` (half ones converted on the way)."""
    return torch.cat([g.reshape(-1) for g in grads]).to(dtype)  # cat promotes to float32
