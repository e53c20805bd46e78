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


def _train_seeded(nets, prior, source, cfg, **options):
    """``train_clustergan`` on ``nets`` (G, E, D) with noise seed 1 and index seed 2, no progress bar."""
    return train.train_clustergan(
        *nets,
        prior,
        source,
        cfg,
        noise_generator=torch.Generator().manual_seed(1),
        index_generator=torch.Generator().manual_seed(2),
        progress=False,
        **options,
    )


def test_loop_runs_records_history_and_is_deterministic():
    cfg = train.TrainConfig(max_iter=20, batch_size=16, log_every=5)
    runs = []
    for _ in range(2):
        g, e, c, prior, src = _setup()
        hist = _train_seeded((g, e, c), prior, src, cfg)
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
    _train_seeded((g, e, c), prior, src, train.TrainConfig(max_iter=3, batch_size=16))
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


def test_encode_with_several_encoders_reads_each_chunk_once():
    g, e, c, prior, src = _setup(n=100)
    _, e2, _, _, _ = _setup(n=100, seed=1)
    reads = []
    take = src.take
    src.take = lambda idx: reads.append(len(idx)) or take(idx)
    (zn1, lg1), (zn2, lg2) = train.encode([e, e2], src, chunk_size=30)
    assert reads == [30, 30, 30, 10]
    for (zn, lg), enc in (((zn1, lg1), e), ((zn2, lg2), e2)):
        zn_all, lg_all = enc(src.data)
        torch.testing.assert_close(zn, zn_all.detach())
        torch.testing.assert_close(lg, lg_all.detach())
    assert not torch.allclose(zn1, zn2)


# ---------------------------------------------------------------- fast path vs the naive loop
# Compared in float64: Adam's first steps are about lr * sign(gradient), so in float32 a gradient
# that is zero up to rounding (e.g. a cancelling bias term) can flip sign between two correct
# implementations and move a weight by ~lr; in float64 the rounding noise stays far below Adam's eps.
class _Source64:
    def __init__(self, x):
        self.data, self.n_obs, self.device = x, x.shape[0], torch.device("cpu")

    def take(self, idx):
        return self.data[idx]


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _naive_draws(prior, x, n_iter, batch, n_critic, seed_noise=1, seed_index=2, block=32):
    """The package's draws (DrawStream with the loop's seeds), in the naive loop's format."""
    from _naive import NaiveDraws

    stream = train.DrawStream(
        prior,
        x.shape[0],
        batch,
        n_critic,
        noise_generator=torch.Generator().manual_seed(seed_noise),
        index_generator=torch.Generator().manual_seed(seed_index),
        block=block,
    )
    done = 0
    while done < n_iter:
        t_block = min(block, n_iter - done)
        idx, z, zn, k, eps = stream.next_block(t_block)
        for t in range(t_block):
            rows = idx[t].view(n_critic, batch)
            eps_shape = (batch,) + (1,) * (x.dim() - 1)
            yield NaiveDraws(
                real=[x[rows[j]] for j in range(n_critic)],
                z_critic=[z[t, j] for j in range(n_critic)],
                eps=[eps[t, j].view(eps_shape) for j in range(n_critic)],
                z=z[t, n_critic],
                zn=zn[t, n_critic],
                k=k[t, n_critic],
            )
        done += t_block


@pytest.mark.parametrize(
    ("options", "batch_norm"),
    [
        ({}, False),  # defaults: explicit penalty, joint real/fake critic batch
        ({"penalty": "autograd", "joint_critic_batch": False}, False),
        ({"penalty": "autograd", "joint_critic_batch": True, "block": 2}, False),
        ({}, True),  # batch-norm: separate critic passes and autograd penalty, automatically
    ],
)
def test_trainer_matches_the_naive_reference_loop(options, batch_norm, float64):
    from _naive import naive_train

    n_iter, batch, n_critic = 4, 16, 3
    cfg = train.TrainConfig(max_iter=n_iter, batch_size=batch, n_critic=n_critic, lr=1e-3)
    nets = []
    for _ in range(2):
        g, e, c = snn.build_networks("mlp", 12, 3, 2, hidden=(16, 16), batch_norm=batch_norm)
        gen = torch.Generator().manual_seed(0)
        for net in (g, e, c):
            snn.init_normal_(net, 0.2, generator=gen)
        nets.append((g, e, c))
    prior = snn.MixedPrior(3, 2)
    x = torch.rand(64, 12, generator=torch.Generator().manual_seed(99))
    train.train_clustergan(
        *nets[0],
        prior,
        _Source64(x),
        cfg,
        noise_generator=torch.Generator().manual_seed(1),
        index_generator=torch.Generator().manual_seed(2),
        progress=False,
        **options,
    )
    naive_train(
        *nets[1],
        x,
        n_latent=3,
        n_clusters=2,
        max_iter=n_iter,
        batch_size=batch,
        n_critic=n_critic,
        lr=1e-3,
        draws=_naive_draws(prior, x, n_iter, batch, n_critic, block=options.get("block", 32)),
    )
    moved = 0.0
    for fast, ref in zip(nets[0], nets[1], strict=True):
        for p, q in zip(fast.state_dict().values(), ref.state_dict().values(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-7, atol=1e-9)
    # and training did move the weights (the comparison is not between two untouched nets)
    g0 = snn.build_networks("mlp", 12, 3, 2, hidden=(16, 16), batch_norm=batch_norm)[0]
    snn.init_normal_(g0, 0.2, generator=torch.Generator().manual_seed(0))
    for p, q in zip(nets[0][0].parameters(), g0.parameters(), strict=True):
        moved = max(moved, float((p - q).detach().abs().max()))
    assert moved > 1e-3


def test_explicit_gradient_equals_autograd_for_conv_and_mlp_critics():
    from scgan_cluster.train._penalty import explicit_input_gradient, penalty_layers

    class ConvCritic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.Sequential(
                torch.nn.Conv2d(1, 4, 4, stride=2, padding=1),
                torch.nn.LeakyReLU(0.2),
                torch.nn.Conv2d(4, 8, 3, stride=2, padding=1),
                torch.nn.ReLU(),
                torch.nn.Flatten(),
                torch.nn.Linear(8 * 3 * 3, 1),
            )

        def forward(self, x):
            return self.layers(x).squeeze(-1)

        def penalty_layers(self):
            return list(self.layers)

    torch_gen = torch.Generator().manual_seed(0)
    conv = ConvCritic()
    mlp = snn.MLPCritic(12, (16, 16))
    for critic, shape in ((conv, (5, 1, 13, 13)), (mlp, (5, 12))):
        x = torch.randn(shape, generator=torch_gen).requires_grad_(True)
        (ref,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        got = explicit_input_gradient(penalty_layers(critic), x.detach())
        torch.testing.assert_close(got, ref)
        # and the gradients of the penalty with respect to the weights agree
        w = next(critic.parameters())
        (g_ref,) = torch.autograd.grad(ref.pow(2).sum(), w)
        (g_got,) = torch.autograd.grad(got.pow(2).sum(), w)
        torch.testing.assert_close(g_got, g_ref)
    assert penalty_layers(snn.MLPCritic(12, (16,), batch_norm=True)) is None
    assert penalty_layers(snn.ConvCritic((1, 32, 32), batch_norm=True)) is None
    assert train.has_batch_norm(snn.MLPCritic(12, (16,), batch_norm=True))
    assert not train.has_batch_norm(mlp)


def _tiny_training_setup(batch_norm: bool = False):
    """Keyword arguments, data, config, prior and MLP networks for one-iteration option checks."""
    kw = {
        "noise_generator": torch.Generator(),
        "index_generator": torch.Generator(),
        "progress": False,
    }
    src = DenseSource(torch.rand(32, 12), torch.device("cpu"))
    cfg = train.TrainConfig(max_iter=1, batch_size=8)
    prior = snn.MixedPrior(3, 2)
    nets = snn.build_networks("mlp", 12, 3, 2, hidden=(16,), batch_norm=batch_norm)
    return kw, src, cfg, prior, nets


def test_penalty_option_validation():
    kw, src, cfg, prior, nets = _tiny_training_setup(batch_norm=True)
    with pytest.raises(ValueError, match="piecewise-linear"):
        train.train_clustergan(*nets, prior, src, cfg, penalty="explicit", **kw)
    with pytest.raises(ValueError, match="penalty must be"):
        train.train_clustergan(*nets, prior, src, cfg, penalty="x", **kw)


# ---------------------------------------------------------------- vectorized ensembles
def _separate_and_stacked(nets, n_runs, prior, x, cfg):
    """``n_runs`` separate trainings of ``nets(r)`` (noise seed 10 + r, index seed 20 + r) and
    one training of the same networks stacked into an ensemble with the same seeds.

    Returns the separate (G, E, D), their histories, the stacked (G, E, D) and its histories.
    """
    singles, hists = [], []
    for r in range(n_runs):
        g, e, c = nets(r)
        hists.append(
            train.train_clustergan(
                g,
                e,
                c,
                prior,
                _Source64(x),
                cfg,
                noise_generator=torch.Generator().manual_seed(10 + r),
                index_generator=torch.Generator().manual_seed(20 + r),
                progress=False,
            )
        )
        singles.append((g, e, c))
    stacked = [snn.stack_ensemble([nets(r)[i] for r in range(n_runs)]) for i in range(3)]
    ens_hist = train.train_clustergan(
        *stacked,
        prior,
        _Source64(x),
        cfg,
        noise_generator=[torch.Generator().manual_seed(10 + r) for r in range(n_runs)],
        index_generator=[torch.Generator().manual_seed(20 + r) for r in range(n_runs)],
        progress=False,
    )
    return singles, hists, stacked, ens_hist


@pytest.mark.parametrize("batch_norm", [False, True])
def test_ensemble_replicas_equal_separate_runs(batch_norm, float64):
    n_runs, d = 3, 12
    cfg = train.TrainConfig(max_iter=6, batch_size=16, lr=1e-3, log_every=3)
    x = torch.rand(64, d, generator=torch.Generator().manual_seed(99))
    prior = snn.MixedPrior(3, 2)

    def nets(seed):
        g, e, c = snn.build_networks("mlp", d, 3, 2, hidden=(16, 16), batch_norm=batch_norm)
        for net in (g, e, c):
            snn.init_normal_(net, 0.2, generator=torch.Generator().manual_seed(seed))
        return g, e, c

    singles, hists, stacked, ens_hist = _separate_and_stacked(nets, n_runs, prior, x, cfg)
    assert isinstance(ens_hist, list)
    assert len(ens_hist) == n_runs
    # batch norm makes the gradient of the bias before it zero up to rounding, and Adam turns
    # that rounding into steps; the batched and the single kernels round differently (on an AMD
    # EPYC here: up to 3e-8 apart after 6 steps in float64), so those runs agree to 1e-7
    atol = 1e-7 if batch_norm else 1e-9
    for i in range(3):
        for r, replica in enumerate(stacked[i].unstack()):
            for p, q in zip(
                replica.state_dict().values(), singles[r][i].state_dict().values(), strict=True
            ):
                torch.testing.assert_close(p, q, rtol=1e-7, atol=atol)
    for r in range(n_runs):
        for key in ("critic_loss", "zn_loss", "zc_loss"):
            np.testing.assert_allclose(ens_hist[r][key], hists[r][key], rtol=1e-7, atol=1e-9)
    # the replicas really differ from one another
    assert not torch.allclose(stacked[0].out.weight[0], stacked[0].out.weight[1])
    # phi(x), the "GAN with Disc. phi" features, per replica (eval mode: batch-norm statistics)
    xs = x[:5].expand(n_runs, 5, d)
    for r, critic in enumerate(stacked[2].eval().unstack()):
        torch.testing.assert_close(stacked[2].features(xs)[r], critic.features(x[:5]))


_SMALL_CONV = {
    # the MNIST family: batch norm in G only, explicit penalty of each single critic
    "mnist": {
        "conv_channels": (4, 8),
        "fc_hidden": (16,),
        "generator_fc": (16,),
        "generator_start_channels": 8,
        "generator_channels": (4,),
    },
    # the COIL family: batch norm in G, E and D, no fully connected hidden layers
    "coil20": {
        "conv_channels": (4, 4, 8, 8),
        "generator_start_channels": 8,
        "generator_channels": (8, 4, 4),
    },
}


@pytest.mark.parametrize("architecture", sorted(_SMALL_CONV))
def test_conv_ensemble_replicas_equal_separate_runs(architecture, float64):
    n_runs, shape = 3, (1, 16, 16)
    cfg = train.TrainConfig(max_iter=4, batch_size=8, n_critic=2, lr=1e-3, log_every=2)
    x = torch.rand((48, *shape), generator=torch.Generator().manual_seed(99))
    prior = snn.MixedPrior(3, 2)

    def nets(seed):
        g, e, c = snn.build_networks(architecture, shape, 3, 2, **_SMALL_CONV[architecture])
        for net in (g, e, c):
            snn.init_normal_(net, 0.2, generator=torch.Generator().manual_seed(seed))
        return g, e, c

    singles, hists, stacked, ens_hist = _separate_and_stacked(nets, n_runs, prior, x, cfg)
    assert len(ens_hist) == n_runs
    # outputs of the stacked modules in eval mode: replica r's slice is the plain replica's
    for i, module in enumerate(stacked):
        assert module.training is False
        assert isinstance(module.unstack()[0], type(singles[0][i]))
    # batch norm turns rounding differences of the grouped and the plain kernels into Adam
    # steps (see test_ensemble_replicas_equal_separate_runs): agreement to 1e-7 in float64
    for i in range(3):
        for r, replica in enumerate(stacked[i].unstack()):
            for (name, p), q in zip(
                replica.state_dict().items(), singles[r][i].state_dict().values(), strict=True
            ):
                torch.testing.assert_close(p, q, rtol=1e-7, atol=1e-7, msg=name)
    for r in range(n_runs):
        for key in ("critic_loss", "gradient_penalty", "zn_loss", "zc_loss"):
            np.testing.assert_allclose(ens_hist[r][key], hists[r][key], rtol=1e-6, atol=1e-8)
    # the stacked forward passes give each replica its own network's output
    z = torch.randn(n_runs, 5, 5, generator=torch.Generator().manual_seed(3))
    images = torch.rand((n_runs, 5, *shape), generator=torch.Generator().manual_seed(4))
    g_out, (zn, logits), d_out = stacked[0](z), stacked[1](images), stacked[2](images)
    assert g_out.shape == (n_runs, 5, *shape)
    for r in range(n_runs):
        g, e, c = singles[r]
        torch.testing.assert_close(g_out[r], g(z[r]))
        torch.testing.assert_close(zn[r], e(images[r])[0])
        torch.testing.assert_close(logits[r], e(images[r])[1])
        torch.testing.assert_close(d_out[r], c(images[r]))
        # phi(x), the "GAN with Disc. phi" features, per replica
        torch.testing.assert_close(stacked[2].features(images)[r], c.features(images[r]))
    # the stacked critic's written-out input gradient (the explicit penalty) is autograd's
    from scgan_cluster.train._penalty import explicit_input_gradient, penalty_layers

    layers = penalty_layers(stacked[2])
    if architecture == "coil20":
        assert layers is None  # batch norm in the critic: autograd's double backward
    else:
        xi = images.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(stacked[2](xi).sum(), xi)
        torch.testing.assert_close(explicit_input_gradient(layers, images), auto)


def test_ensemble_validation():
    g, e, c = snn.build_networks("mlp", 12, 3, 2, hidden=(16,))
    with pytest.raises(ValueError, match="MLP and convolutional networks only"):
        snn.stack_ensemble([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)])
    ens = [snn.stack_ensemble([m, m]) for m in (g, e, c)]
    with pytest.raises(ValueError, match="needs 2 generators"):
        train.train_clustergan(
            *ens,
            snn.MixedPrior(3, 2),
            DenseSource(torch.rand(32, 12), torch.device("cpu")),
            train.TrainConfig(max_iter=1, batch_size=8),
            noise_generator=torch.Generator(),
            index_generator=[torch.Generator(), torch.Generator()],
            progress=False,
        )


def test_explicit_penalty_of_the_registry_conv_critic_equals_autograd():
    from scgan_cluster.train._penalty import explicit_input_gradient, penalty_layers

    torch_gen = torch.Generator().manual_seed(1)
    _, _, critic = snn.build_networks("mnist", (1, 28, 28), 4, 3, fc_hidden=(32,))
    critic = critic.double()
    layers = penalty_layers(critic)
    assert layers is not None
    x = torch.rand((3, 1, 28, 28), generator=torch_gen, dtype=torch.float64).requires_grad_(True)
    (ref,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    got = explicit_input_gradient(layers, x.detach())
    torch.testing.assert_close(got, ref)
    w = next(critic.parameters())
    (g_ref,) = torch.autograd.grad(ref.pow(2).sum(), w)
    (g_got,) = torch.autograd.grad(got.pow(2).sum(), w)
    torch.testing.assert_close(g_got, g_ref)


# ---------------------------------------------------------------- hand-written gradients
def _step_inputs(n_runs: int):
    """Seeded real batch, latent draw (z, zn, k) and interpolation weights for the chain nets."""
    gen = torch.Generator().manual_seed(5)
    lead = (n_runs,) if n_runs > 1 else ()
    real = torch.rand((*lead, 8, 12), generator=gen)
    z = torch.randn((*lead, 8, 5), generator=gen)
    zn, k = z[..., :3], torch.randint(0, 2, (*lead, 8), generator=gen)
    eps = torch.rand((*lead, 8, 1), generator=gen)
    return real, z, zn, k, eps


def _chain_nets(
    n_runs, d=12, hidden=(16, 16), output="linear", leak=0.2, seed=0, encoder_batch_norm=False
):
    def one(s):
        g = snn.MLPGenerator(d, 3, 2, hidden, output=output, leak=leak)
        e = snn.MLPEncoder(d, 3, 2, hidden, leak=leak, batch_norm=encoder_batch_norm)
        c = snn.MLPCritic(d, hidden, leak=leak)
        for net in (g, e, c):
            snn.init_normal_(net, 0.3, generator=torch.Generator().manual_seed(s))
        return g, e, c

    if n_runs == 1:
        return one(seed)
    return tuple(snn.stack_ensemble([one(seed + r)[i] for r in range(n_runs)]) for i in range(3))


def _train_chain(n_runs, cfg, x, *, hidden=(16, 16), **kwargs):
    """Seeded training of ``_chain_nets(n_runs)`` on ``x`` (noise seeds 10 + r, index seeds 20 + r).

    Returns the networks and the histories as a list (one per replica).
    """
    nets = _chain_nets(n_runs, hidden=hidden)
    noise = [torch.Generator().manual_seed(10 + r) for r in range(n_runs)]
    index = [torch.Generator().manual_seed(20 + r) for r in range(n_runs)]
    hist = train.train_clustergan(
        *nets,
        snn.MixedPrior(3, 2),
        _Source64(x),
        cfg,
        noise_generator=noise if n_runs > 1 else noise[0],
        index_generator=index if n_runs > 1 else index[0],
        progress=False,
        **kwargs,
    )
    return nets, hist if n_runs > 1 else [hist]


def _assert_same_training(runs, rtol, atol):
    (nets_f, hist_f), (nets_o, hist_o) = runs
    for m, o in zip(nets_f, nets_o, strict=True):
        for p, q in zip(m.parameters(), o.parameters(), strict=True):
            # own storage again after training
            assert p.untyped_storage().nbytes() == p.numel() * p.element_size()
            torch.testing.assert_close(p.detach(), q.detach(), rtol=rtol, atol=atol)
    for a, b in zip(hist_f, hist_o, strict=True):
        for key in ("critic_loss", "gradient_penalty", "zn_loss", "zc_loss", "reconstruction_loss"):
            np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=atol)


def _grads(module):
    return [p.grad.clone() for p in module.parameters()]


@pytest.mark.parametrize(
    ("n_runs", "output", "leak"), [(1, "linear", 0.2), (1, "sigmoid", 0.0), (3, "linear", 0.2)]
)
def test_manual_steps_equal_autograd(n_runs, output, leak, float64):
    from scgan_cluster.train._losses import critic_loss, generator_encoder_loss
    from scgan_cluster.train._manual import ManualSteps

    g, e, c = _chain_nets(n_runs, output=output, leak=leak)
    if leak == 0.0:  # LeakyReLU(0) behaves as ReLU; check ReLU layers too
        assert isinstance(c.trunk[1], torch.nn.LeakyReLU)
        c.trunk[1] = torch.nn.ReLU()
    real, z, zn, k, eps = _step_inputs(n_runs)
    steps = ManualSteps(g, e, c)
    steps.refresh_generator()
    fake = steps.generate(z)
    torch.testing.assert_close(fake, g(z).detach())
    # critic step
    values = steps.critic_step(real, fake, eps, 10.0)
    got = _grads(c)
    for p in c.parameters():
        p.grad = None
    loss, wdist, gp = critic_loss(c, real, fake, eps, 10.0)
    loss.sum().backward()
    for a, b in zip(got, _grads(c), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for a, b in zip(values, (loss.detach(), wdist, gp), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    # generator / encoder step
    values = steps.generator_step(z, zn, k, 10.0, 10.0)
    got = _grads(g) + _grads(e)
    for p in [*g.parameters(), *e.parameters()]:
        p.grad = None
    for p in c.parameters():
        p.requires_grad_(False)
    fake = g(z)
    total, *parts = generator_encoder_loss(c, fake, zn, k, *e(fake), 10.0, 10.0)
    total.sum().backward()
    for a, b in zip(got, _grads(g) + _grads(e), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for a, b in zip(values, parts, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    # with the reconstruction term on a real batch
    from scgan_cluster.train import reconstruction_loss

    values = steps.generator_step(z, zn, k, 10.0, 10.0, real, 3.0)
    assert len(values) == 4
    got = _grads(g) + _grads(e)
    for p in [*g.parameters(), *e.parameters()]:
        p.grad = None
    fake = g(z)
    total, *parts = generator_encoder_loss(c, fake, zn, k, *e(fake), 10.0, 10.0)
    recon = reconstruction_loss(g, e, real, 1 if n_runs > 1 else 0)
    (total + 3.0 * recon).sum().backward()
    for a, b in zip(got, _grads(g) + _grads(e), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for a, b in zip(values, [*parts, recon], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_ensemble_manual_training_equals_autograd(float64):
    cfg = train.TrainConfig(max_iter=5, batch_size=16, lr=1e-3, log_every=1)
    x = torch.rand(64, 12, generator=torch.Generator().manual_seed(99))
    runs = [_train_chain(2, cfg, x, gradients=g) for g in ("manual", "autograd")]
    _assert_same_training(runs, rtol=1e-7, atol=1e-9)


def test_bf16_gradients_are_close_to_float32():
    from scgan_cluster.train import reconstruction_loss
    from scgan_cluster.train._manual import ManualSteps

    # wide enough (>= 64) that the hidden layers really run in bfloat16
    g, e, c = _chain_nets(1, d=96, hidden=(128, 64))
    gen = torch.Generator().manual_seed(3)
    real = torch.rand((64, 96), generator=gen)
    z = torch.randn((64, 5), generator=gen)
    zn, k = z[:, :3], torch.randint(0, 2, (64,), generator=gen)
    eps = torch.rand((64, 1), generator=gen)
    grads, values = {}, {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        steps = ManualSteps(g, e, c, dtype=dtype)
        steps.refresh_generator()
        fake = steps.generate(z)
        assert fake.dtype == (torch.bfloat16 if dtype else torch.float32)
        real_c = real.to(fake.dtype)
        values[name] = [*steps.critic_step(real_c, fake, eps, 10.0)]
        values[name] += steps.generator_step(z, zn, k, 10.0, 10.0)
        grads[name] = _grads(c) + _grads(g) + _grads(e)
        # the generator step with the reconstruction term (error against float32 real cells)
        values[name] += steps.generator_step(z, zn, k, 10.0, 10.0, real, 1.0)
        grads[name] += _grads(g) + _grads(e)
    with torch.no_grad():
        torch.testing.assert_close(values["fp32"][-1], reconstruction_loss(g, e, real))
    for a, b in zip(grads["bf16"], grads["fp32"], strict=True):
        assert a.dtype == torch.float32
        if float(b.norm()) < 1e-6:  # the critic's output bias: sum of +-1/batch, exactly 0
            assert float(a.norm()) < 1e-6
            continue
        cos = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
        assert cos > 0.99
        assert float((a - b).norm() / b.norm()) < 0.1
    for a, b in zip(values["bf16"], values["fp32"], strict=True):
        torch.testing.assert_close(a, b, rtol=0.05, atol=0.02)


def test_gradients_and_precision_validation():
    kw, src, cfg, prior, nets = _tiny_training_setup()
    with pytest.raises(ValueError, match="gradients must be"):
        train.train_clustergan(*nets, prior, src, cfg, gradients="x", **kw)
    with pytest.raises(ValueError, match="precision must be"):
        train.train_clustergan(*nets, prior, src, cfg, precision="fp16", **kw)
    with pytest.raises(ValueError, match="needs fully connected networks"):
        train.train_clustergan(*nets, prior, src, cfg, gradients="manual", penalty="autograd", **kw)
    # bf16 training runs and records finite losses: hand-written steps, and autocast on the
    # autograd path (batch-norm networks)
    bn_nets = _tiny_training_setup(batch_norm=True)[4]
    for networks in (nets, bn_nets):
        hist = train.train_clustergan(*networks, prior, src, cfg, precision="bf16", **kw)
        assert all(np.isfinite(hist["critic_loss"]))


def test_manual_critic_step_of_a_custom_chain_equals_autograd(float64):
    from scgan_cluster.train._losses import critic_loss
    from scgan_cluster.train._manual import ManualSteps

    class Critic(torch.nn.Module):  # an Identity right after the first layer, ReLU, no bias
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(6, 8),
                torch.nn.Identity(),
                torch.nn.ReLU(),
                torch.nn.Linear(8, 5, bias=False),
                torch.nn.LeakyReLU(0.1),
                torch.nn.Linear(5, 1),
            )

        def forward(self, x):
            return self.layers(x).squeeze(-1)

        def penalty_layers(self):
            return list(self.layers)

    critic = Critic()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in critic.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    real, fake = torch.randn((2, 10, 6), generator=gen)
    eps = torch.rand((10, 1), generator=gen)
    steps = ManualSteps(torch.nn.Linear(1, 1), torch.nn.Linear(1, 1), critic)
    assert not steps.handles_generator
    values = steps.critic_step(real, fake, eps, 10.0)
    got = _grads(critic)
    for p in critic.parameters():
        p.grad = None
    loss, wdist, gp = critic_loss(critic, real, fake, eps, 10.0)
    loss.backward()
    for a, b in zip(got, _grads(critic), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(values[0], loss.detach(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- flat parameters, FlatAdam
@pytest.mark.parametrize("fused", [True, False])
def test_flat_adam_equals_torch_adam(fused, float64):
    from scgan_cluster.train._flat import FlatAdam

    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3), (3,), (2, 4, 5), (1,)]
    mine = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in mine]
    kw = {"lr": 1e-2, "betas": (0.5, 0.9)}
    flat = FlatAdam(mine, fused=fused, **kw)
    opt = torch.optim.Adam(ref, fused=fused, foreach=False if not fused else None, **kw)
    for p in mine:  # the parameters are views of the one buffer
        assert p.untyped_storage().data_ptr() == flat.data.untyped_storage().data_ptr()
    for _ in range(5):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for p, g in zip(ref, grads, strict=True):
            p.grad = g
        opt.step()
        flat.step(torch.cat([g.reshape(-1) for g in grads]))
        for p, q in zip(mine, ref, strict=True):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-15, atol=1e-15)
    flat.release()
    for p, q in zip(mine, ref, strict=True):  # own storage again, same values
        assert p.untyped_storage().data_ptr() != flat.data.untyped_storage().data_ptr()
        assert p.is_contiguous()
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="one dtype"):
        FlatAdam([torch.zeros(2), torch.zeros(2, dtype=torch.float32)], **kw)


@pytest.mark.parametrize("n_runs", [1, 3])
def test_flat_steps_equal_the_module_steps(n_runs, float64):
    from scgan_cluster.train._manual import ManualSteps, chain_parameters

    g, e, c = _chain_nets(n_runs)
    real, z, zn, k, eps = _step_inputs(n_runs)
    steps = ManualSteps(g, e, c)
    steps.refresh_generator()
    fake = steps.generate(z)
    d_params = chain_parameters(steps.d_layers)
    ge_params = chain_parameters(steps.g_layers) + chain_parameters(steps.e_layers)
    assert {id(p) for p in d_params} == {id(p) for p in c.parameters()}
    flat_d = torch.cat([p.detach().reshape(-1) for p in d_params])
    flat_ge = torch.cat([p.detach().reshape(-1) for p in ge_params])
    torch.testing.assert_close(steps.generate_flat(flat_ge, z), fake, rtol=0, atol=0)
    values = steps.critic_step(real, fake, eps, 10.0)
    want = torch.cat([p.grad.reshape(-1) for p in d_params])
    for out in (None, torch.full_like(flat_d, float("nan"))):
        got, *got_values = steps.critic_flat(flat_d, real, fake, eps, 10.0, out=out)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
        for a, b in zip(got_values, values, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for recon in ({}, {"real": real, "beta_r": 3.0}):
        values = steps.generator_step(z, zn, k, 10.0, 10.0, **recon)
        want = torch.cat([p.grad.reshape(-1) for p in ge_params])
        for out in (None, torch.full_like(flat_ge, float("nan"))):
            got, *got_values = steps.generator_flat(
                flat_ge, flat_d, z, zn, k, 10.0, 10.0, out=out, **recon
            )
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
            assert len(got_values) == len(values) == 3 + len(recon) // 2
            for a, b in zip(got_values, values, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


class _CriticWithSpareParameter(snn.MLPCritic):
    """An MLP critic with one parameter outside its chain of layers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.spare = torch.nn.Parameter(torch.zeros(1))


def test_compile_validation():
    kw, src, cfg, prior, nets = _tiny_training_setup()
    with pytest.raises(TypeError, match="True or False"):
        train.train_clustergan(*nets, prior, src, cfg, compile="yes", **kw)
    with pytest.raises(ValueError, match="compile=True needs"):
        train.train_clustergan(*nets, prior, src, cfg, compile=True, gradients="autograd", **kw)
    g, e, _ = nets
    critic = _CriticWithSpareParameter(12, (16,))
    with pytest.raises(ValueError, match="all in their chains"):
        train.train_clustergan(g, e, critic, prior, src, cfg, compile=True, **kw)
    for p in [*g.parameters(), *e.parameters()]:  # nothing was moved into a flat buffer
        assert p.untyped_storage().nbytes() == p.numel() * p.element_size()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*torch.jit.script_method.*:DeprecationWarning")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_steps_equal_eager(precision, tmp_path, monkeypatch):
    from scgan_cluster.train._manual import ManualSteps, chain_parameters, compiled_steps

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # inductor's files go here

    dtype = torch.bfloat16 if precision == "bf16" else None
    g, e, c = _chain_nets(1, d=96, hidden=(128, 64))
    steps = ManualSteps(g, e, c, dtype=dtype)
    gen = torch.Generator().manual_seed(4)
    flat_d = torch.cat([p.detach().reshape(-1) for p in chain_parameters(steps.d_layers)])
    flat_ge = torch.cat(
        [p.detach().reshape(-1) for p in chain_parameters(steps.g_layers + steps.e_layers)]
    )
    z = torch.randn((64, 5), generator=gen)
    zn, k = z[:, :3], torch.randint(0, 2, (64,), generator=gen)
    real = torch.rand((64, 96), generator=gen)
    eps = torch.rand((64, 1), generator=gen)
    if dtype is not None:
        real = real.to(dtype)
    generate_c, critic_c, generator_c = compiled_steps(steps)

    def close(a, b):
        if dtype is None:
            # inductor sums in another order: each entry of a gradient may be off by float32
            # rounding of its largest terms, which is the tensor's scale, not the entry's own
            # size (one entry of 36,261 at 0.27 next to entries of 8e4 is off by 6e-5)
            scale = float(b.abs().max()) if b.numel() else 0.0
            torch.testing.assert_close(a, b, rtol=1e-4, atol=max(1e-6, 1e-7 * scale))
            assert float((a - b).norm()) <= 1e-6 * float(b.norm()) + 1e-6
        else:  # inductor keeps bf16 intermediates in float32: a few bf16 roundings apart
            a, b = a.float(), b.float()
            assert float((a - b).norm()) <= 0.03 * float(b.norm()) + 1e-3

    fake = steps.generate_flat(flat_ge, z)
    close(generate_c(flat_ge, z), fake)
    eager = steps.critic_flat(flat_d, real, fake, eps, 10.0)
    for a, b in zip(critic_c(flat_d, real, fake, eps, 10.0), eager, strict=True):
        close(a, b)
    eager = steps.generator_flat(flat_ge, flat_d, z, zn, k, 10.0, 10.0)
    for a, b in zip(generator_c(flat_ge, flat_d, z, zn, k, 10.0, 10.0), eager, strict=True):
        close(a, b)
    # with the reconstruction term
    recon = {"real": real.float(), "beta_r": 1.0}
    eager = steps.generator_flat(flat_ge, flat_d, z, zn, k, 10.0, 10.0, **recon)
    compiled = generator_c(flat_ge, flat_d, z, zn, k, 10.0, 10.0, **recon)
    assert len(compiled) == len(eager) == 5
    for a, b in zip(compiled, eager, strict=True):
        close(a, b)
    # a structurally equal set of networks reuses the compiled functions
    steps2 = ManualSteps(*_chain_nets(1, d=96, hidden=(128, 64), seed=9), dtype=dtype)
    assert compiled_steps(steps2) is compiled_steps(steps)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*torch.jit.script_method.*:DeprecationWarning")
def test_compiled_training_runs_close_to_eager(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    # losses only: Adam turns rounding-level differences of (near-)zero gradients into lr-sized
    # steps, so parameters are not compared tightly here (the steps are, above)
    cfg = train.TrainConfig(max_iter=4, batch_size=64, log_every=1)
    x = torch.rand(256, 96, generator=torch.Generator().manual_seed(99))
    hists = []
    for compile in (False, True):
        hists.append(
            _train_seeded(
                _chain_nets(1, d=96, hidden=(128, 64)),
                snn.MixedPrior(3, 2),
                DenseSource(x, torch.device("cpu")),
                cfg,
                compile=compile,
            )
        )
    for key in ("critic_loss", "wasserstein", "gradient_penalty", "zn_loss", "zc_loss"):
        np.testing.assert_allclose(hists[1][key], hists[0][key], rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------- bf16 on the autograd path
def _small_conv_nets(seed: int = 0):
    """The registry's conv networks (batch-norm in G, explicit penalty) at a small size."""
    nets = snn.build_networks(
        "mnist",
        (1, 16, 16),
        4,
        3,
        conv_channels=(16, 32),
        fc_hidden=(64,),
        generator_fc=(64,),
        generator_start_channels=32,
        generator_channels=(16,),
    )
    for net in nets:
        snn.init_normal_(net, 0.1, generator=torch.Generator().manual_seed(seed))
    return nets


def test_explicit_penalty_under_bf16_autocast_is_close_to_float32():
    from scgan_cluster.train._penalty import explicit_input_gradient, penalty_layers

    critic = _small_conv_nets()[2]
    layers = penalty_layers(critic)
    x = torch.rand((8, 1, 16, 16), generator=torch.Generator().manual_seed(2))
    ref = explicit_input_gradient(layers, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = explicit_input_gradient(layers, x)
    assert got.dtype == torch.bfloat16  # the products really ran in bfloat16
    # bf16 rounding (and the odd flipped LReLU slope) through 4 layers: a few % (0.063 here),
    # the per-sample norms that enter the penalty closer (0.014 here)
    a, b = got.detach().float().flatten(1), ref.detach().flatten(1)
    assert float((a - b).norm() / b.norm()) < 0.1
    assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.99
    torch.testing.assert_close(a.norm(dim=1), b.norm(dim=1), rtol=0.03, atol=0)
    # its weight gradients (through the casts) reach the float32 parameters
    for w in (critic.trunk[0].weight, critic.out.weight):
        (g_ref,) = torch.autograd.grad(ref.pow(2).sum(), w, retain_graph=True)
        (g_got,) = torch.autograd.grad(got.float().pow(2).sum(), w, retain_graph=True)
        assert g_got.dtype == torch.float32
        assert float((g_got - g_ref).norm() / g_ref.norm()) < 0.1


@pytest.mark.parametrize("penalty", ["auto", "autograd"])
def test_bf16_autocast_training_of_conv_networks_is_close_to_float32(penalty):
    cfg = train.TrainConfig(max_iter=3, batch_size=16, n_critic=2, lr=1e-3, log_every=1)
    x = torch.rand((64, 1, 16, 16), generator=torch.Generator().manual_seed(9))
    prior = snn.MixedPrior(4, 3)
    start = [p.detach().clone() for net in _small_conv_nets() for p in net.parameters()]
    hist, params = {}, {}
    for precision in ("fp32", "bf16"):
        nets = _small_conv_nets()
        hist[precision] = _train_seeded(
            nets,
            prior,
            DenseSource(x, torch.device("cpu")),
            cfg,
            penalty=penalty,
            precision=precision,
        )
        params[precision] = [p.detach() for net in nets for p in net.parameters()]
    assert all(p.dtype == torch.float32 for p in params["bf16"])
    for key in ("critic_loss", "wasserstein", "gradient_penalty", "zn_loss", "zc_loss"):
        np.testing.assert_allclose(hist["bf16"][key], hist["fp32"][key], rtol=0.05, atol=0.02)
    # the updates of all parameters together point the same way and have the same size
    delta = {
        p: torch.cat([(q - s).flatten() for q, s in zip(params[p], start, strict=True)])
        for p in params
    }
    assert float(delta["fp32"].norm()) > 1e-3  # training moved the weights
    cos = torch.nn.functional.cosine_similarity(delta["bf16"], delta["fp32"], dim=0)
    ratio = float(delta["bf16"].norm() / delta["fp32"].norm())
    assert cos > 0.98  # 0.996 with either penalty
    assert 0.95 < ratio < 1.05  # 0.999


# ---------------------------------------------------------------- reconstruction term (beta_r)
def test_reconstruction_loss_known_answer_and_replicas():
    from scgan_cluster.train import reconstruction_loss

    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]])

    def enc(v):  # zn_hat = first feature, logits = (0, 0): softmax (0.5, 0.5)
        return v[..., :1], torch.zeros(*v.shape[:-1], 2)

    def gen(z):  # x_rec = (zn + zc_0, zn - zc_1)
        return torch.stack([z[..., 0] + z[..., 1], z[..., 0] - z[..., 2]], dim=-1)

    # rows: (1, 2) -> (1.5, 0.5): 0.25 + 2.25; (0, -1) -> (0.5, -0.5): 0.25 + 0.25
    torch.testing.assert_close(reconstruction_loss(gen, enc, x), torch.tensor(1.5))
    # an ensemble's leading replica dimension gives one value per replica
    stacked = torch.stack([x, 2 * x])
    got = reconstruction_loss(gen, enc, stacked, 1)
    assert got.shape == (2,)
    torch.testing.assert_close(got[0], torch.tensor(1.5))
    torch.testing.assert_close(got[1], reconstruction_loss(gen, enc, 2 * x))


@pytest.mark.parametrize("gradients", ["auto", "autograd"])
def test_beta_r_zero_is_the_paper_objective(gradients):
    """An explicit beta_r = 0 trains exactly as a config without the option."""
    params = []
    for cfg in (
        train.TrainConfig(max_iter=5, batch_size=16),
        train.TrainConfig(max_iter=5, batch_size=16, beta_r=0.0),
    ):
        g, e, c, prior, src = _setup()
        hist = _train_seeded((g, e, c), prior, src, cfg, gradients=gradients)
        assert hist["reconstruction_loss"] == [0.0] * len(hist["iteration"])
        params.append([p.detach().clone() for net in (g, e, c) for p in net.parameters()])
    for p, q in zip(*params, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert train.TrainConfig().beta_r == 0.0
    assert train.TrainConfig(beta_r=2).to_dict()["beta_r"] == 2


def _blobs(n=192, d=12, seed=5):
    """Two well-separated groups of samples in [0, 1] (a tiny stand-in for two cell types)."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.zeros(2, d)
    centre[0, : d // 2] = 0.8
    centre[1, d // 2 :] = 0.8
    k = torch.arange(n) % 2
    return (centre[k] + 0.05 * torch.randn(n, d, generator=gen)).clamp(0, 1)


@torch.no_grad()
def _recon_error(g, e, x):
    from scgan_cluster.train import reconstruction_loss

    n_lead = 1 if getattr(e, "n_runs", None) else 0
    xs = x.expand(e.n_runs, *x.shape) if n_lead else x
    return reconstruction_loss(g, e, xs, n_lead)


@pytest.mark.parametrize("n_runs", [1, 2])
def test_beta_r_trains_the_encoder_and_generator_to_reconstruct_real_data(n_runs):
    x = _blobs()
    errors = {}
    for beta_r in (0.0, 10.0):
        nets = _chain_nets(n_runs, hidden=(32, 32), seed=0)
        before = _recon_error(nets[0], nets[1], x)
        cfg = train.TrainConfig(max_iter=100, batch_size=32, lr=1e-3, beta_r=beta_r)
        hist = train.train_clustergan(
            *nets,
            snn.MixedPrior(3, 2),
            DenseSource(x, torch.device("cpu")),
            cfg,
            noise_generator=[torch.Generator().manual_seed(10 + r) for r in range(n_runs)],
            index_generator=[torch.Generator().manual_seed(20 + r) for r in range(n_runs)],
            progress=False,
        )
        errors[beta_r] = (before, _recon_error(nets[0], nets[1], x))
        for h in [hist] if n_runs == 1 else hist:  # the term's value, recorded when it is on
            rec = np.asarray(h["reconstruction_loss"])
            if beta_r == 0:
                assert (rec == 0).all()
            else:
                assert rec[-1] < 0.2 * rec[0]
    (b0, a0), (b1, a1) = errors[0.0], errors[10.0]
    torch.testing.assert_close(b0, b1)  # the same start
    # every replica reconstructs the real samples far better than at the start, and far better
    # than the paper's objective (which never shows E a real sample) gets to
    assert bool((a1 < 0.1 * b1).all()), (b1, a1)
    assert bool((a1 < 0.1 * a0).all()), (a0, a1)


@pytest.mark.parametrize("n_runs", [1, 2])
def test_beta_r_hand_written_training_equals_autograd(n_runs, float64):
    """With beta_r > 0 the hand-written steps train as the all-autograd path does."""
    x = torch.rand(64, 12, generator=torch.Generator().manual_seed(99))
    cfg = train.TrainConfig(max_iter=5, batch_size=16, lr=1e-3, beta_r=3.0, log_every=1)
    runs = [
        _train_chain(n_runs, cfg, x, gradients="manual"),
        _train_chain(n_runs, cfg, x, gradients="autograd"),
    ]
    _assert_same_training(runs, rtol=1e-7, atol=1e-9)
    # and beta_r > 0 changes training
    nets_h = runs[0][0]
    nets_0, _ = _train_chain(n_runs, train.TrainConfig(max_iter=5, batch_size=16, lr=1e-3), x)
    assert not torch.equal(nets_0[1].out.weight, nets_h[1].out.weight)
    torch.testing.assert_close(nets_0[2].out.weight, nets_h[2].out.weight, rtol=0.5, atol=1.0)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), "1"])
def test_beta_r_validation(value):
    with pytest.raises(ValueError, match="beta_r"):
        train.TrainConfig(beta_r=value)


class _OneModeEncoder(torch.nn.Module):
    """Every sample goes to zc mode 0 (softmax ~ one-hot)."""

    def forward(self, x):
        logits = torch.full((x.shape[0], 4), -30.0)
        logits[:, 0] = 30.0
        return x[:, :2], logits


@pytest.mark.parametrize(
    ("floor", "expected"),
    [
        # 0.5 * uniform + 0.5 * one-hot = (0.625, 0.125, 0.125, 0.125): the floor 0.025 does not bind
        (0.1, [0.625, 0.125, 0.125, 0.125]),
        # floor 0.8 / 4 = 0.2 binds: (0.625, 0.2, 0.2, 0.2) / 1.225
        (0.8, [0.625 / 1.225, 0.2 / 1.225, 0.2 / 1.225, 0.2 / 1.225]),
    ],
)
def test_update_prior_weights_floor_known_answer(floor, expected):
    from scgan_cluster.train._loop import update_prior_weights

    weights = torch.full((4,), 0.25)
    source = DenseSource(torch.rand(50, 6), torch.device("cpu"))
    update_prior_weights(
        weights, _OneModeEncoder(), source, torch.Generator().manual_seed(0), floor=floor
    )
    torch.testing.assert_close(weights, torch.tensor(expected), rtol=0, atol=1e-6)


# ---------------------------------------------------------------- step objects
def _step_class(name):
    from scgan_cluster.train import _steps

    return {"autograd": _steps.AutogradStep, "manual": _steps.ManualStep, "flat": _steps.FlatStep}[
        name
    ]


def _iteration_inputs(n_runs, n_critic, batch=8, d=12, gen=None):
    """One generator iteration's inputs in the loop's layout (lead = (n_runs,) for an ensemble)."""
    gen = torch.Generator().manual_seed(5) if gen is None else gen
    lead = (n_runs,) if n_runs > 1 else ()
    real = torch.rand((*lead, n_critic, batch, d), generator=gen)
    z = torch.randn((n_critic + 1, *lead, batch, 5), generator=gen)
    k = torch.randint(0, 2, (*lead, batch), generator=gen)
    eps = torch.rand((n_critic, *lead, batch, 1), generator=gen)
    return real, z, z[n_critic, ..., :3], k, eps


def _run_steps(step, real, z, zn, k, eps, recon):
    """One iteration of ``step``: critic totals and the G / E step's values."""
    n_critic, nl = eps.shape[0], real.dim() - 3
    totals = torch.zeros((3, *real.shape[:nl]))
    step.critic_steps(real, z[:n_critic], eps, totals)
    real_r = real.select(nl, n_critic - 1) if recon else None
    return totals, step.generator_step(z[n_critic], zn, k, real_r)


def _plain_critic_update(g, c, real, z, eps, gp_weight, opt):
    """One WGAN-GP critic update with autograd, written out: returns (loss, W, GP)."""
    with torch.no_grad():
        fake = g(z)
    x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(c(x_hat).sum(), x_hat, create_graph=True)
    gp = ((grad.norm(2, dim=-1) - 1.0) ** 2).mean(-1)
    wdist = c(real).mean(-1) - c(fake).mean(-1)
    loss = gp_weight * gp - wdist
    opt.zero_grad()
    loss.sum().backward()
    opt.step()
    return torch.stack([loss.detach(), wdist.detach(), gp.detach()])


def _plain_generator_update(g, e, c, z, zn, k, cfg, opt, real=None):
    """One joint G / E update with autograd, written out: returns (adv, zn, zc, recon)."""
    for p in c.parameters():
        p.requires_grad_(False)
    fake = g(z)
    zn_hat, logits = e(fake)
    adv = -c(fake).mean(-1)
    zn_loss = (zn_hat - zn).pow(2).sum(-1).mean(-1)
    zc_loss = -torch.log_softmax(logits, -1).gather(-1, k.unsqueeze(-1)).squeeze(-1).mean(-1)
    loss = adv + cfg.beta_n * zn_loss + cfg.beta_c * zc_loss
    recon = None
    if real is not None:
        zn_r, logits_r = e(real)
        x_rec = g(torch.cat([zn_r, torch.softmax(logits_r, -1)], -1))
        recon = (x_rec - real).pow(2).sum(-1).mean(-1)
        loss = loss + cfg.beta_r * recon
    opt.zero_grad()
    loss.sum().backward()
    opt.step()
    for p in c.parameters():
        p.requires_grad_(True)
    return adv.detach(), zn_loss.detach(), zc_loss.detach(), recon


@pytest.mark.parametrize("recon", [False, True])
@pytest.mark.parametrize(
    ("name", "encoder_batch_norm"),
    [("autograd", False), ("manual", False), ("flat", False), ("manual", True)],
)
@pytest.mark.parametrize("n_runs", [1, 2])
def test_each_step_class_equals_a_plain_autograd_update(
    name, encoder_batch_norm, n_runs, recon, float64
):
    """Two critic updates and one G / E update of each step class, against autograd by hand.

    ``("manual", True)``: a batch-norm encoder, so the hand-written critic step with autograd's
    G / E step.
    """
    cfg = train.TrainConfig(batch_size=8, n_critic=2, lr=1e-3, beta_r=3.0 if recon else 0.0)
    nets = _chain_nets(n_runs, encoder_batch_norm=encoder_batch_norm)
    start = [{n: p.detach().clone() for n, p in net.named_parameters()} for net in nets]
    real, z, zn, k, eps = _iteration_inputs(n_runs, cfg.n_critic)
    with _step_class(name)(*nets, cfg) as step:
        totals, values = _run_steps(step, real, z, zn, k, eps, recon)
    # the same update by hand, from the same initial weights
    g, e, c = _chain_nets(n_runs, encoder_batch_norm=encoder_batch_norm)
    adam = {"lr": cfg.lr, "betas": cfg.betas}
    opt_d = torch.optim.Adam(c.parameters(), **adam)
    opt_ge = torch.optim.Adam([*g.parameters(), *e.parameters()], **adam)
    nl = 1 if n_runs > 1 else 0
    want = sum(
        _plain_critic_update(g, c, real.select(nl, j), z[j], eps[j], cfg.gp_weight, opt_d)
        for j in range(cfg.n_critic)
    )
    real_r = real.select(nl, cfg.n_critic - 1) if recon else None
    want_values = _plain_generator_update(g, e, c, z[cfg.n_critic], zn, k, cfg, opt_ge, real_r)
    torch.testing.assert_close(totals, want, rtol=1e-9, atol=1e-12)
    assert (values[3] is None) == (not recon)
    for a, b in zip(values, want_values, strict=True):
        if b is not None:
            assert a.shape == b.shape == (n_runs,)[:nl]
            assert not a.requires_grad
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for net, ref in zip(nets, (g, e, c), strict=True):
        for (key, p), q in zip(net.state_dict().items(), ref.state_dict().values(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-10, msg=key)
    for net in nets:  # requires_grad back on and own storage after close()
        for p in net.parameters():
            assert p.requires_grad
            assert p.untyped_storage().nbytes() == p.numel() * p.element_size()
    for net, before in zip(nets, start, strict=True):  # every weight matrix was updated
        for n, p in net.named_parameters():
            assert not n.endswith("weight") or not torch.equal(p, before[n]), n


def _drive(name, n_runs, n_iter, precision="fp32", hidden=(16, 16)):
    """``n_iter`` iterations of a step class on seeded inputs (beta_r on); nets and values."""
    cfg = train.TrainConfig(batch_size=8, n_critic=2, lr=1e-3, beta_r=1.0)
    nets = _chain_nets(n_runs, hidden=hidden)
    gen = torch.Generator().manual_seed(8)
    values = []
    with _step_class(name)(*nets, cfg, precision=precision) as step:
        for _ in range(n_iter):
            inputs = _iteration_inputs(n_runs, cfg.n_critic, gen=gen)
            totals, out = _run_steps(step, *inputs, recon=True)
            values.append(torch.cat([totals, torch.stack(out)]))
    return nets, torch.stack(values)


@pytest.mark.parametrize("n_runs", [1, 2])
def test_flat_step_equals_manual_step_over_iterations(n_runs, float64):
    (nets_f, values_f), (nets_m, values_m) = (_drive(n, n_runs, 4) for n in ("flat", "manual"))
    torch.testing.assert_close(values_f, values_m, rtol=1e-10, atol=1e-12)
    for a, b in zip(nets_f, nets_m, strict=True):
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_runs", [1, 2])
def test_bf16_flat_step_reuses_conversions_only_while_weights_are_unchanged(n_runs):
    # layers of width 64 run in bf16; the flat step converts each buffer once and keeps the
    # conversion while the buffer is unchanged (G / E for a whole iteration, D from one update
    # to the next step), the manual step converts the weights at every step: same numbers
    runs = [_drive(n, n_runs, 3, precision="bf16", hidden=(64, 64)) for n in ("flat", "manual")]
    (nets_f, values_f), (nets_m, values_m) = runs
    torch.testing.assert_close(values_f, values_m, rtol=1e-6, atol=1e-7)
    for a, b in zip(nets_f, nets_m, strict=True):
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_make_step_picks_the_implementation():
    from scgan_cluster.train._steps import AutogradStep, FlatStep, ManualStep, make_step

    cfg = train.TrainConfig()
    mlp, ensemble = _chain_nets(1), _chain_nets(2)
    bn = snn.build_networks("mlp", 12, 3, 2, hidden=(16,), batch_norm=True)
    conv = _small_conv_nets()
    g, e, _ = mlp
    cases = [
        (mlp, {}, FlatStep),
        (ensemble, {}, FlatStep),
        (mlp, {"gradients": "autograd"}, AutogradStep),
        (mlp, {"penalty": "autograd"}, AutogradStep),
        (mlp, {"joint_critic_batch": False}, AutogradStep),
        (bn, {}, AutogradStep),
        (conv, {}, AutogradStep),
        (_chain_nets(1, encoder_batch_norm=True), {}, ManualStep),
        ((g, e, _CriticWithSpareParameter(12, (16, 16))), {"gradients": "manual"}, ManualStep),
    ]
    for nets, options, cls in cases:
        with make_step(*nets, cfg, **options) as step:
            assert type(step) is cls, (options, type(step))
    with pytest.raises(ValueError, match="all in their chains"):
        FlatStep(g, e, _CriticWithSpareParameter(12, (16, 16)), cfg)
    with pytest.raises(ValueError, match="generator made of linear layers"):
        ManualStep(*bn[:2], snn.MLPCritic(12, (16,)), cfg)


def test_loop_gives_parameters_their_storage_back_when_it_fails():
    g, e, c = _chain_nets(1)
    with pytest.raises(ValueError, match="larger than the number of samples"):
        train.train_clustergan(
            g,
            e,
            c,
            snn.MixedPrior(3, 2),
            DenseSource(torch.rand(4, 12), torch.device("cpu")),
            train.TrainConfig(max_iter=1, batch_size=8),
            noise_generator=torch.Generator(),
            index_generator=torch.Generator(),
            progress=False,
        )
    for net in (g, e, c):
        for p in net.parameters():
            assert p.untyped_storage().nbytes() == p.numel() * p.element_size()
            assert not net.training


@pytest.mark.filterwarnings("ignore:.*torch.jit.script_method.*:DeprecationWarning")
def test_compiled_step_cache_keeps_no_network_alive():
    import gc
    import weakref

    from scgan_cluster.train._manual import ManualSteps, compiled_steps

    nets = _chain_nets(1, seed=11)
    refs = [weakref.ref(m) for net in nets for m in net.modules()]
    refs += [weakref.ref(p) for net in nets for p in net.parameters()]
    first = compiled_steps(ManualSteps(*nets))  # compiled lazily: nothing is compiled here
    del nets
    gc.collect()
    assert all(r() is None for r in refs)
    # a network of the same structure gets the same compiled functions
    assert compiled_steps(ManualSteps(*_chain_nets(1, seed=12))) is first


def test_lr_final_schedule():
    cfg = train.TrainConfig(max_iter=5, lr=1e-3, lr_final=1e-4)
    rates = [cfg.lr_at(i) for i in range(5)]
    np.testing.assert_allclose(rates, [1e-3, 7.75e-4, 5.5e-4, 3.25e-4, 1e-4], rtol=1e-12)
    assert cfg.to_dict()["lr_final"] == 1e-4
    constant = train.TrainConfig(max_iter=5, lr=1e-3)
    assert [constant.lr_at(i) for i in range(5)] == [1e-3] * 5
    assert train.TrainConfig(max_iter=1, lr=1e-3, lr_final=1e-4).lr_at(0) == 1e-3


@pytest.mark.parametrize("value", [0.0, -1e-4, float("nan"), float("inf"), "1e-4", True])
def test_lr_final_validation(value):
    with pytest.raises(ValueError, match="lr_final"):
        train.TrainConfig(lr_final=value)


@pytest.mark.parametrize("n_runs", [1, 2])
def test_falling_learning_rate_hand_written_equals_autograd(n_runs, float64):
    """Both step kinds follow the schedule; a schedule from lr to lr is the constant rate."""
    x = torch.rand(64, 12, generator=torch.Generator().manual_seed(99))
    kw = {"max_iter": 6, "batch_size": 16, "lr": 1e-2, "beta_r": 1.0, "log_every": 1}
    falling = train.TrainConfig(**kw, lr_final=1e-4)
    runs = [_train_chain(n_runs, falling, x, gradients=g) for g in ("manual", "autograd")]
    _assert_same_training(runs, rtol=1e-7, atol=1e-9)
    constant = _train_chain(n_runs, train.TrainConfig(**kw), x)
    flat = _train_chain(n_runs, train.TrainConfig(**kw, lr_final=1e-2), x)
    _assert_same_training([constant, flat], rtol=0, atol=0)
    # the falling rate moves the weights less than the constant one from the same start
    start = _chain_nets(n_runs)[1].out.weight.detach()
    moved = [float((r[0][1].out.weight.detach() - start).norm()) for r in (runs[0], constant)]
    assert moved[0] < moved[1], moved
