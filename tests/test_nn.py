import pytest
import torch

from scgan_cluster import nn as snn


def test_mlp_architecture_is_the_papers_10x_model():
    g, e, d = snn.build_networks("mlp", 720, 30, 8)
    linear = [m for m in g.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(38, 256), (256, 256), (256, 720)]
    linear = [m for m in e.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(720, 256), (256, 256), (256, 38)]
    linear = [m for m in d.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(720, 256), (256, 256), (256, 1)]
    leaks = {
        m.negative_slope
        for net in (g, e, d)
        for m in net.modules()
        if isinstance(m, torch.nn.LeakyReLU)
    }
    assert leaks == {0.2}
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for net in (g, e, d) for m in net.modules())


def test_forward_shapes_and_linear_output():
    g, e, d = snn.build_networks("mlp", 50, 6, 4)
    z = torch.randn(7, 10)
    x = g(z)
    assert x.shape == (7, 50)
    assert (x < 0).any()  # linear output, not a sigmoid
    zn, logits = e(x)
    assert zn.shape == (7, 6)
    assert logits.shape == (7, 4)
    assert d(x).shape == (7,)
    assert d.features(x).shape == (7, 256)


def test_options_batch_norm_sigmoid():
    g, e, d = snn.build_networks(
        "mlp", 16, 5, 10, batch_norm=True, output="sigmoid", hidden=(32, 32)
    )
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in g.modules()) == 2
    x = g(torch.randn(4, 15))
    assert ((x > 0) & (x < 1)).all()


def test_init_normal_is_seeded_and_has_the_papers_std():
    g1, _, _ = snn.build_networks("mlp", 720, 30, 8)
    g2, _, _ = snn.build_networks("mlp", 720, 30, 8)
    snn.init_normal_(g1, 0.02, generator=torch.Generator().manual_seed(3))
    snn.init_normal_(g2, 0.02, generator=torch.Generator().manual_seed(3))
    for p1, p2 in zip(g1.parameters(), g2.parameters(), strict=True):
        torch.testing.assert_close(p1, p2)
    w = g1.out.weight
    assert abs(w.std().item() - 0.02) < 0.001
    assert abs(w.mean().item()) < 0.001
    assert (g1.out.bias == 0).all()


def test_prior():
    prior = snn.MixedPrior(30, 8, sigma=0.1)
    g = torch.Generator().manual_seed(0)
    z, zn, k = prior.sample(20000, generator=g)
    assert z.shape == (20000, 38)
    torch.testing.assert_close(z[:, :30], zn)
    assert (z[:, 30:].sum(1) == 1).all()
    assert (z[:, 30:].argmax(1) == k).all()
    assert abs(zn.std().item() - 0.1) < 0.002
    counts = torch.bincount(k, minlength=8).float() / 20000
    assert (counts - 1 / 8).abs().max() < 0.015
    _, _, k3 = prior.sample(5, cluster=3)
    assert (k3 == 3).all()


def test_registry():
    with pytest.raises(ValueError, match="Unknown architecture"):
        snn.build_networks("nope", 10, 2, 2)
    with pytest.raises(ValueError, match="takes the options"):
        snn.build_networks("mlp", 10, 2, 2, depth=3)
    with pytest.raises(ValueError, match="already registered"):
        snn.register_architecture("mlp", snn.ARCHITECTURES["mlp"])
