"""Algorithm 1 of the paper (backprop decoding of the latent): scgan_cluster.train.backprop_decode."""

import pytest
import torch

from scgan_cluster.nn import MixedPrior
from scgan_cluster.train import backprop_decode


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a busy 2-core machine, 2 threads spin-wait and run ~50x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class FrozenLinear(torch.nn.Module):
    """A fixed random linear generator G(z) = z W^T: every z gives a different x."""

    def __init__(self, n_in: int, n_out: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.lin = torch.nn.Linear(n_in, n_out)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(n_out, n_in, generator=g))
            self.lin.bias.zero_()

    def forward(self, z):
        return self.lin(z)


class FrozenMLP(torch.nn.Module):
    """A fixed random MLP with batch norm (eval mode must be used while decoding)."""

    def __init__(self, n_in: int, n_out: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_in, 64),
            torch.nn.BatchNorm1d(64),
            torch.nn.Tanh(),
            torch.nn.Linear(64, n_out),
        )
        with torch.no_grad():
            for p in self.net.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 if p.dim() > 1 else 0.1))

    def forward(self, z):
        return self.net(z)


def _latent(n, n_latent, k, seed=1):
    prior = MixedPrior(n_latent, k, sigma=0.1)
    return prior.sample(n, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("net", "chunk_size"), [(FrozenLinear, 10), (FrozenMLP, 256)])
def test_recovers_a_known_latent(net, chunk_size):
    n_latent, k = 3, 4
    gen = net(n_latent + k, 20)
    gen.train()  # decoding must switch to eval mode and back
    before = [p.detach().clone() for p in gen.parameters()]
    z, zn, mode = _latent(24, n_latent, k)
    with torch.no_grad():
        gen.eval()
        x = gen(z)
        gen.train()
    res = backprop_decode(
        gen,
        x,
        k,
        n_latent=n_latent,
        lam=0.0,
        n_steps=200,
        lr=0.02,
        chunk_size=chunk_size,
        noise_generator=torch.Generator().manual_seed(0),
    )
    assert res.z.shape == (24, n_latent + k)
    assert res.restart_loss.shape == (24, k)
    torch.testing.assert_close(res.k, mode)  # the mode (cluster) of every point
    assert (res.zn - zn).abs().max() < 0.03  # and the continuous part
    torch.testing.assert_close(res.z[:, n_latent:], torch.nn.functional.one_hot(mode, k).float())
    # the best restart is the argmin of the restart losses, far below the others
    torch.testing.assert_close(res.loss, res.restart_loss.min(1).values)
    wrong = res.restart_loss.clone()
    wrong[torch.arange(24), mode] = float("inf")
    assert (wrong.min(1).values > 10 * res.loss + 0.1).all()
    # the generator is left as it was
    assert gen.training
    for p, q in zip(gen.parameters(), before, strict=True):
        assert p.requires_grad
        torch.testing.assert_close(p, q)


def test_clipping_and_regulariser():
    n_latent, k = 2, 3
    gen = FrozenLinear(n_latent + k, 10)
    # a target far outside the generator's reach within the box: zn ends on the box boundary
    x = gen(
        torch.cat([torch.full((5, n_latent), 3.0), torch.eye(k)[[0, 1, 2, 0, 1]]], dim=1)
    ).detach()
    res = backprop_decode(gen, x, k, n_latent=n_latent, lam=0.0, n_steps=300, lr=0.05, clip=0.6)
    assert res.zn.abs().max() <= 0.6 + 1e-6
    assert torch.isclose(res.zn.abs().max(), torch.tensor(0.6))
    # a huge lambda pulls zn to zero
    z, _, _ = _latent(6, n_latent, k)
    res = backprop_decode(gen, gen(z).detach(), k, n_latent=n_latent, lam=1e4, n_steps=300, lr=0.01)
    assert res.zn.abs().max() < 0.01


def test_input_errors():
    gen = FrozenLinear(5, 4)
    x = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="n_steps"):
        backprop_decode(gen, x, 3, n_latent=2, n_steps=0)
    with pytest.raises(ValueError, match="lr and clip"):
        backprop_decode(gen, x, 3, n_latent=2, clip=0.0)
    with pytest.raises(ValueError, match="lam"):
        backprop_decode(gen, x, 3, n_latent=2, lam=-1.0)
    with pytest.raises(TypeError, match="torch tensor"):
        backprop_decode(gen, x.numpy(), 3, n_latent=2)
