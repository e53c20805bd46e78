"""Checkpoints of the training loop: a stopped run continues to the same weights."""

import pytest
import torch

from scgan_cluster import nn as snn
from scgan_cluster import train
from scgan_cluster.adapters import DenseSource


class Stop(Exception):
    """Raised by a callback to interrupt a run, as a killed process would."""


def _nets(n_runs: int, d: int = 12):
    def one(seed):
        g, e, c = snn.build_networks("mlp", d, 3, 2, hidden=(16, 16))
        for net in (g, e, c):
            snn.init_normal_(net, 0.1, generator=torch.Generator().manual_seed(seed))
        return g, e, c

    if n_runs == 1:
        return one(0)
    return tuple(snn.stack_ensemble([one(r)[i] for r in range(n_runs)]) for i in range(3))


def _run(n_runs, cfg, x, *, checkpoint=None, stop_at=None, **options):
    """A seeded run; with ``stop_at`` it is interrupted by the callback at that iteration."""
    nets = _nets(n_runs)
    prior = snn.MixedPrior(3, 2)

    def callback(it, record):
        if it == stop_at:
            raise Stop

    noise = [torch.Generator().manual_seed(10 + r) for r in range(n_runs)]
    index = [torch.Generator().manual_seed(20 + r) for r in range(n_runs)]
    hist = train.train_clustergan(
        *nets,
        prior,
        DenseSource(x, torch.device("cpu")),
        cfg,
        noise_generator=noise if n_runs > 1 else noise[0],
        index_generator=index if n_runs > 1 else index[0],
        progress=False,
        callback=callback,
        checkpoint=checkpoint,
        block=4,
        **options,
    )
    return nets, prior, hist


def _without_seconds(hist):
    hists = hist if isinstance(hist, list) else [hist]
    return [{k: v for k, v in h.items() if k != "seconds"} for h in hists]


def _assert_same(a, b):
    (nets_a, prior_a, hist_a), (nets_b, prior_b, hist_b) = a, b
    for net_a, net_b in zip(nets_a, nets_b, strict=True):
        for (name, ta), tb in zip(
            net_a.state_dict().items(), net_b.state_dict().values(), strict=True
        ):
            assert torch.equal(ta, tb), name
    assert torch.equal(prior_a.weights, prior_b.weights)
    assert _without_seconds(hist_a) == _without_seconds(hist_b)


@pytest.mark.parametrize("n_runs", [1, 2])
@pytest.mark.parametrize(
    "options",
    [
        {},  # hand-written gradients on flat buffers (FlatStep)
        {"gradients": "autograd"},  # torch.optim.Adam (AutogradStep)
    ],
)
def test_interrupted_run_resumes_to_the_same_weights(n_runs, options, tmp_path):
    # a learned prior and the reconstruction term: every piece of state the loop carries
    cfg = train.TrainConfig(
        max_iter=40, batch_size=16, lr=1e-3, log_every=5, prior_update_every=6, beta_r=1.0
    )
    x = torch.rand(96, 12, generator=torch.Generator().manual_seed(5))
    whole = _run(n_runs, cfg, x, **options)
    path = tmp_path / "run.pt"
    with pytest.raises(Stop):
        _run(n_runs, cfg, x, checkpoint=path, stop_at=25, checkpoint_every=8, **options)
    saved = torch.load(path, weights_only=True)
    assert saved["iteration"] == 24  # the last whole block at or after 8, 16, 24
    resumed = _run(n_runs, cfg, x, checkpoint=path, checkpoint_every=8, **options)
    _assert_same(whole, resumed)
    assert torch.load(path, weights_only=True)["iteration"] == 40  # written at the end too


def test_a_finished_checkpoint_gives_the_finished_run(tmp_path):
    cfg = train.TrainConfig(max_iter=12, batch_size=16, log_every=4)
    x = torch.rand(64, 12, generator=torch.Generator().manual_seed(5))
    path = tmp_path / "run.pt"
    first = _run(1, cfg, x, checkpoint=path)
    again = _run(1, cfg, x, checkpoint=path)  # nothing left to train: the saved end state
    _assert_same(first, again)
    assert again[2]["iteration"] == [4.0, 8.0, 12.0]


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    cfg = train.TrainConfig(max_iter=8, batch_size=16, log_every=4)
    x = torch.rand(64, 12, generator=torch.Generator().manual_seed(5))
    path = tmp_path / "run.pt"
    _run(1, cfg, x, checkpoint=path)
    with pytest.raises(ValueError, match=r"another run \(config"):
        _run(
            1,
            train.TrainConfig(max_iter=8, batch_size=16, log_every=4, lr=1e-3),
            x,
            checkpoint=path,
        )
    with pytest.raises(ValueError, match=r"another run \(data"):
        _run(1, cfg, x + 0.5, checkpoint=path)
    with pytest.raises(ValueError, match="n_runs"):
        _run(2, cfg, x, checkpoint=path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable ClusterGAN checkpoint"):
        _run(1, cfg, x, checkpoint=path)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="is not a ClusterGAN checkpoint"):
        _run(1, cfg, x, checkpoint=path)


def test_checkpoint_every_is_validated(tmp_path):
    cfg = train.TrainConfig(max_iter=4, batch_size=16)
    x = torch.rand(64, 12)
    with pytest.raises(ValueError, match="checkpoint_every"):
        _run(1, cfg, x, checkpoint=tmp_path / "a.pt", checkpoint_every=0)


def test_divergence_names_the_iterations_and_writes_no_checkpoint(tmp_path):
    cfg = train.TrainConfig(max_iter=8, batch_size=16, log_every=4)
    x = torch.full((64, 12), float("nan"))
    path = tmp_path / "run.pt"
    with pytest.raises(FloatingPointError, match=r"diverged at generator iterations 1-4"):
        _run(1, cfg, x, checkpoint=path, checkpoint_every=100)
    # with checkpoints more often than records, the check runs before each write
    with pytest.raises(FloatingPointError, match=r"iterations 1-4"):
        _run(1, train.TrainConfig(max_iter=8, batch_size=16, log_every=8), x, checkpoint=path)
    assert not path.exists()
