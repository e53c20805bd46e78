import numpy as np
import pytest
import torch

from scgan_cluster import nn as snn
from scgan_cluster import train
from scgan_cluster.adapters import DenseSource


class Linear(torch.nn.Module):
    def __init__(self, w, b=0.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.as_tensor(w, dtype=torch.float32))
        self.b = b

    def forward(self, x):
        return x @ self.w + self.b


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = w.x: the gradient is w everywhere, so GP = (||w|| - 1)^2 = (5 - 1)^2 = 16
    crit = Linear([3.0, 4.0])
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    gp = train.gradient_penalty(crit, real, fake, torch.rand(8, 1))
    assert gp.item() == pytest.approx(16.0)


def test_critic_loss_known_answer():
    crit = Linear([1.0, 0.0], b=0.5)
    real = torch.tensor([[2.0, 9.0], [4.0, 9.0]])
    fake = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    loss, w, gp = train.critic_loss(crit, real, fake, torch.full((2, 1), 0.5), gp_weight=10.0)
    assert w.item() == pytest.approx(3.0 - 1.0)
    assert gp.item() == pytest.approx(0.0)
    assert loss.item() == pytest.approx(-2.0)


def test_generator_encoder_loss_known_answer():
    crit = Linear([1.0])
    fake = torch.tensor([[2.0], [4.0]])
    zn = torch.tensor([[0.1, 0.2], [0.0, 0.0]])
    zn_hat = torch.tensor([[0.0, 0.0], [0.3, 0.4]])
    k = torch.tensor([0, 1])
    logits = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    total, adv, zl, cl = train.generator_encoder_loss(
        crit, fake, zn, k, zn_hat, logits, beta_n=10, beta_c=2
    )
    assert adv.item() == pytest.approx(-3.0)
    # ||.||^2 per sample: 0.05 and 0.25 -> batch mean 0.15 (summed over dims, not averaged)
    assert zl.item() == pytest.approx(0.15)
    assert cl.item() == pytest.approx(np.log(2))
    assert total.item() == pytest.approx(-3.0 + 10 * 0.15 + 2 * np.log(2), rel=1e-6)


def test_epoch_sampler_covers_each_epoch_once():
    s = train.EpochSampler(10, 3, torch.Generator().manual_seed(0))
    epoch = torch.cat([next(s) for _ in range(3)])
    assert sorted(epoch.tolist()) == sorted(set(epoch.tolist()))
    assert len(epoch) == 9
    with pytest.raises(ValueError, match="larger than the number of samples"):
        train.EpochSampler(2, 3, torch.Generator())


def _setup(seed=0, n=128, d=12):
    torch_gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=torch.Generator().manual_seed(99))
    g, e, c = snn.build_networks("mlp", d, 3, 2, hidden=(16, 16))
    for net in (g, e, c):
        snn.init_normal_(net, 0.02, generator=torch_gen)
    prior = snn.MixedPrior(3, 2)
    return g, e, c, prior, DenseSource(x, torch.device("cpu"))


def test_loop_runs_records_history_and_is_deterministic():
    cfg = train.TrainConfig(max_iter=20, batch_size=16, log_every=5)
    runs = []
    for _ in range(2):
        g, e, c, prior, src = _setup()
        hist = train.train_clustergan(
            g,
            e,
            c,
            prior,
            src,
            cfg,
            noise_generator=torch.Generator().manual_seed(1),
            index_generator=torch.Generator().manual_seed(2),
            progress=False,
        )
        runs.append((hist, [p.detach().clone() for p in g.parameters()]))
    hist = runs[0][0]
    assert set(hist) == set(train.HISTORY_KEYS)
    assert hist["iteration"] == [5.0, 10.0, 15.0, 20.0]
    assert all(np.isfinite(v).all() for v in hist.values())
    assert {k: v for k, v in hist.items() if k != "seconds"} == {
        k: v for k, v in runs[1][0].items() if k != "seconds"
    }
    for p1, p2 in zip(runs[0][1], runs[1][1], strict=True):
        torch.testing.assert_close(p1, p2, rtol=0, atol=0)


def test_loop_updates_every_network():
    g, e, c, prior, src = _setup()
    before = [[p.detach().clone() for p in net.parameters()] for net in (g, e, c)]
    train.train_clustergan(
        g,
        e,
        c,
        prior,
        src,
        train.TrainConfig(max_iter=3, batch_size=16),
        noise_generator=torch.Generator().manual_seed(1),
        index_generator=torch.Generator().manual_seed(2),
        progress=False,
    )
    for net, old in zip((g, e, c), before, strict=True):
        assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), old, strict=True))
        assert all(p.requires_grad for p in net.parameters())


def test_divergence_is_reported():
    g, e, c, prior, src = _setup()
    src.data[0, 0] = float("nan")
    src.data[:] = float("nan")
    with pytest.raises(FloatingPointError, match="diverged"):
        train.train_clustergan(
            g,
            e,
            c,
            prior,
            src,
            train.TrainConfig(max_iter=2, batch_size=16, log_every=1),
            noise_generator=torch.Generator().manual_seed(1),
            index_generator=torch.Generator().manual_seed(2),
            progress=False,
        )


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"max_iter": 0}, "max_iter"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"lr": 0}, "lr must be > 0"),
        ({"betas": (0.5, 1.2)}, "betas"),
        ({"beta_n": float("nan")}, "beta_n"),
    ],
)
def test_config_validation(kwargs, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        train.TrainConfig(**kwargs)


def test_encode_streams_in_chunks():
    g, e, c, prior, src = _setup(n=100)
    zn, logits = train.encode(e, src, chunk_size=7)
    zn_all, logits_all = e(src.data)
    torch.testing.assert_close(zn, zn_all.detach())
    torch.testing.assert_close(logits, logits_all.detach())
