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


# ---------------------------------------------------------------- the paper's architectures

PAPER = {
    # name: (input shape, zn, beta_n)  -- appendix 6.2 of the paper
    "mlp": (720, 30, 10.0),
    "synthetic": (100, 6, 10.0),
    "pendigits": (16, 5, 10.0),
    "mnist": ((1, 28, 28), 30, 10.0),
    "fashion_mnist": ((1, 28, 28), 40, 0.0),
    "coil20": ((1, 32, 32), 20, 10.0),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_registry_defaults_are_the_papers(name):
    entry = snn.ARCHITECTURES[name]
    shape, zn, beta_n = PAPER[name]
    d = entry.defaults
    assert d["n_latent"] == zn
    assert d["beta_n"] == beta_n
    assert d["beta_c"] == 10.0
    assert d["sigma"] == 0.1
    assert d["batch_size"] == 64
    assert d["lr"] == 1e-4
    assert tuple(d["betas"]) == (0.5, 0.9)
    assert d["n_critic"] == 5
    assert d["gp_weight"] == 10.0
    assert d["leak"] == 0.2
    assert set(entry.training_defaults) == set(snn.TRAINING_KEYS)
    assert not set(entry.network_defaults) & set(snn.TRAINING_KEYS)
    assert entry.kind == ("image" if isinstance(shape, tuple) else "vector")


@pytest.mark.parametrize("name", sorted(PAPER))
def test_forward_shapes_of_every_architecture(name):
    shape, zn, _ = PAPER[name]
    k = 7
    g, e, d = snn.build_networks(name, shape, zn, k)
    x_shape = (5, *shape) if isinstance(shape, tuple) else (5, shape)
    x = g(torch.randn(5, zn + k))
    assert x.shape == x_shape
    if snn.ARCHITECTURES[name].network_defaults["output"] == "sigmoid":
        assert ((x > 0) & (x < 1)).all()
    real = torch.rand(x_shape)
    z_hat, logits = e(real)
    assert z_hat.shape == (5, zn)
    assert logits.shape == (5, k)
    assert d(real).shape == (5,)
    assert d.features(real).ndim == 2


def test_mnist_layers_follow_the_appendix():
    g, e, d = snn.build_networks("mnist", (1, 28, 28), 30, 10)
    lin = [(m.in_features, m.out_features) for m in g.modules() if isinstance(m, torch.nn.Linear)]
    assert lin == [(40, 1024), (1024, 7 * 7 * 128)]
    ups = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in ups] == [
        (128, 64, (4, 4), (2, 2)),
        (64, 1, (4, 4), (2, 2)),
    ]
    assert (
        sum(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) for m in g.modules()) == 3
    )
    assert sum(isinstance(m, torch.nn.ReLU) for m in g.modules()) == 3
    assert isinstance(g.activation, torch.nn.Sigmoid)
    for net, out in ((e, 40), (d, 1)):
        convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        assert [(m.in_channels, m.out_channels, m.stride) for m in convs] == [
            (1, 64, (2, 2)),
            (64, 128, (2, 2)),
        ]
        lin = [
            (m.in_features, m.out_features) for m in net.modules() if isinstance(m, torch.nn.Linear)
        ]
        assert lin == [(128 * 7 * 7, 1024), (1024, out)]
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
        assert {m.negative_slope for m in net.modules() if isinstance(m, torch.nn.LeakyReLU)} == {
            0.2
        }


def test_coil20_layers_follow_the_appendix():
    g, e, d = snn.build_networks("coil20", (1, 32, 32), 20, 20)
    lin = [(m.in_features, m.out_features) for m in g.modules() if isinstance(m, torch.nn.Linear)]
    assert lin == [(40, 2 * 2 * 448)]
    ups = [
        (m.in_channels, m.out_channels)
        for m in g.modules()
        if isinstance(m, torch.nn.ConvTranspose2d)
    ]
    assert ups == [(448, 256), (256, 128), (128, 64), (64, 1)]
    for net in (e, d):
        convs = [
            (m.in_channels, m.out_channels) for m in net.modules() if isinstance(m, torch.nn.Conv2d)
        ]
        assert convs == [(1, 64), (64, 128), (128, 256), (256, 512)]
        bn = [m.num_features for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert bn == [128, 256, 512]  # no batch norm after the first convolution
    assert e.out.out_features == 40
    # colour images take three channels
    g3, e3, _ = snn.build_networks("coil20", (3, 32, 32), 20, 20)
    assert g3(torch.randn(2, 40)).shape == (2, 3, 32, 32)


def test_pendigits_mlp_has_batch_norm_and_sigmoid():
    g, e, d = snn.build_networks("pendigits", 16, 5, 10)
    for net in (g, e, d):
        kinds = [type(m).__name__ for m in net.trunk]
        assert kinds == ["Linear", "BatchNorm1d", "LeakyReLU"] * 2
    assert isinstance(g.activation, torch.nn.Sigmoid)
    g2, _, _ = snn.build_networks("pendigits", 16, 5, 10, batch_norm_first=False)
    assert [type(m).__name__ for m in g2.trunk][:3] == ["Linear", "LeakyReLU", "BatchNorm1d"]


@pytest.mark.parametrize("name", ["synthetic", "pendigits"])
def test_critic_batch_norm_option_takes_bn_out_of_the_critic_only(name):
    _, _, d_paper = snn.build_networks(name, 16, 5, 4)
    g, e, d = snn.build_networks(name, 16, 5, 4, critic_batch_norm=False)
    n_bn = [
        sum(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())
        for net in (g, e, d, d_paper)
    ]
    assert n_bn == [2, 2, 0, 2]
    assert [type(m).__name__ for m in d.trunk] == ["Linear", "LeakyReLU"] * 2
    # "mlp": the critic follows batch_norm unless told otherwise
    _, _, d_mlp = snn.build_networks("mlp", 16, 5, 4, batch_norm=True)
    _, _, d_mlp_off = snn.build_networks("mlp", 16, 5, 4, batch_norm=True, critic_batch_norm=False)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in d_mlp.modules()) == 2
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in d_mlp_off.modules())


def test_batch_norm_critic_cannot_see_a_shift_of_the_whole_batch():
    # why critic_batch_norm=False exists: normalising each batch right after the first linear
    # layer removes any vector added to every sample, so a generator off the data by a constant
    # shift looks like the data to this critic
    torch.manual_seed(0)
    x = torch.rand(64, 16)
    shift = torch.full((16,), 0.3)
    for batch_norm, blind in ((True, True), (False, False)):
        _, _, d = snn.build_networks("synthetic", 16, 5, 4, critic_batch_norm=batch_norm)
        d.train()
        with torch.no_grad():
            same = torch.allclose(d(x), d(x + shift), atol=1e-4)
        assert same is blind


@pytest.mark.parametrize("name", sorted(PAPER))
def test_two_training_steps_on_tiny_random_data(name):
    from scgan_cluster.train import TrainConfig, train_clustergan

    shape, zn, _ = PAPER[name]
    k = 3
    gen, enc, crit = snn.build_networks(name, shape, zn, k)
    n = 12
    x = torch.rand((n, *shape) if isinstance(shape, tuple) else (n, shape))

    class Source:
        n_obs = n
        device = torch.device("cpu")

        def take(self, idx):
            return x[idx]

    prior = snn.MixedPrior(zn, k)
    before = [p.detach().clone() for p in gen.parameters()]
    hist = train_clustergan(
        gen,
        enc,
        crit,
        prior,
        Source(),
        TrainConfig(max_iter=2, batch_size=4, n_critic=1),
        noise_generator=torch.Generator().manual_seed(0),
        index_generator=torch.Generator().manual_seed(1),
    )
    assert hist["iteration"][-1] == 2
    assert all(torch.isfinite(torch.tensor(v)).all() for v in hist.values())
    assert any(not torch.equal(b, p) for b, p in zip(before, gen.parameters(), strict=True))


def test_pick_architecture_by_shape():
    assert snn.pick_architecture(50) == "mlp"
    assert snn.pick_architecture((50,)) == "mlp"
    assert snn.pick_architecture((1, 28, 28)) == "mnist"
    assert snn.pick_architecture((1, 32, 32)) == "coil20"
    assert snn.pick_architecture((3, 32, 32)) == "coil20"
    assert snn.pick_architecture((1, 12, 12)) == "mnist"  # first entry that takes it
    with pytest.raises(ValueError, match="No registered image architecture"):
        snn.pick_architecture((1, 30, 30))
    with pytest.raises(ValueError, match="vectors"):
        snn.pick_architecture((2, 3))


def test_shape_errors():
    with pytest.raises(ValueError, match="takes images"):
        snn.build_networks("mnist", 784, 30, 10)
    with pytest.raises(ValueError, match="multiples of 4"):
        snn.build_networks("mnist", (1, 30, 30), 30, 10)
    with pytest.raises(ValueError, match="takes vectors"):
        snn.build_networks("mlp", (1, 28, 28), 30, 10)
    with pytest.raises(ValueError, match="arguments of ClusterGAN"):
        snn.build_networks("mlp", 10, 2, 2, lr=3)
    with pytest.raises(ValueError, match="reserved"):
        snn.register_architecture("auto", snn.ARCHITECTURES["mlp"])
