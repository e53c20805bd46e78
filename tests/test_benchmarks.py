"""The lab's paper harnesses: Table 1 (benchmarks/paper_table1.py) and its baselines
(benchmarks/_baselines.py), the MNIST study (benchmarks/paper_mnist.py) and the ensemble timing
(benchmarks/bench_ensemble.py)."""

import json

import numpy as np
import pytest
import torch
from _baselines import (
    METHOD_KIND,
    BenchData,
    Budget,
    make_methods,
    train_gan,
    train_gans,
    with_options,
)
from _helpers import ON_CUDA
from _protocol import paper_split, run_method

import scgan_cluster as scg

pytestmark = pytest.mark.lab


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a busy 2-core machine, 2 threads spin-wait and run ~50x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


TINY = Budget(
    max_iter=3,
    bp_steps=3,
    bp_max_points=10,
    vae_iter=3,
    vae_batch=64,
    agglo_max=250,
    spectral_max=200,
)


@pytest.fixture(scope="module")
def tiny():
    adata = scg.datasets.synthetic(60, 3, n_features=12, random_state=0)
    x = np.asarray(adata.X, dtype=np.float32)
    y = adata.obs["label"].cat.codes.to_numpy().astype(np.int64)
    options = {"hidden": (16, 16), "leak": 0.2, "batch_norm": True, "output": "sigmoid"}
    data = BenchData("tiny", x, y, 3, architecture_options=options, n_latent=2, batch_size=16)
    return data, paper_split(len(x), seed=0)


@pytest.mark.parametrize("name", list(METHOD_KIND))
def test_every_method_labels_the_held_out_points(tiny, name):
    data, split = tiny
    result = make_methods(TINY)[name](data, split, 3, 0)
    for part, labels, index in (
        ("val", result.val_labels, result.val_index),
        ("test", result.test_labels, result.test_index),
    ):
        n = len(split[part]) if index is None else len(index)
        if index is not None:  # a subset of the held-out points, given by position
            assert n == min(len(split[part]), TINY.bp_max_points)
            assert np.all(np.diff(index) > 0)
            assert index.max() < len(split[part])
        labels = np.asarray(labels)
        assert labels.shape == (n,)
        assert np.issubdtype(labels.dtype, np.integer)
        assert labels.min() >= 0
        assert labels.max() < 3


@pytest.mark.parametrize("kind", ["gan", "infogan"])
def test_gan_baselines_trained_as_one_ensemble_equal_separate_runs(tiny, kind):
    # without batch norm in G and D: in float32, a batch norm turns the rounding differences of
    # the batched and the single kernels into Adam steps (see tests/test_train.py)
    data, split = tiny
    data = with_options(data, {"batch_norm": False})
    x = data.x[split["train"]]
    together = train_gans(data, x, kind, max_iter=2, seeds=[0, 1])
    for seed, run in enumerate(together):
        alone = train_gan(data, x, kind, max_iter=2, seed=seed)
        for name in ("generator", "critic", "encoder"):
            a, b = getattr(run, name).state_dict(), getattr(alone, name).state_dict()
            assert a.keys() == b.keys()
            if kind == "infogan" and name == "encoder":
                assert len(a) == 9  # InfoGAN's Q head: two linear layers (4) and a batch norm (5)
                # the bias right before the head's batch norm changes nothing and its gradient
                # is zero up to rounding, which Adam turns into steps of any sign
                del a["head.0.bias"]
            for key in a:
                torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
        assert run.history["critic_loss"] == pytest.approx(alone.history["critic_loss"], 1e-4)
        assert run.seconds == pytest.approx(together[0].seconds)


@pytest.mark.parametrize("name", ["InfoGAN", "GAN with bp", "GAN with Disc. phi"])
def test_gan_baselines_of_an_ensemble_budget_label_every_run(tiny_images, name):
    data, split = tiny_images
    budget = Budget(**{**TINY.to_dict(), "max_iter": 2, "bp_steps": 2, "bp_max_points": 4})
    budget.ensemble_runs = 2
    methods = make_methods(budget)
    results = [methods[name](data, split, 2, seed) for seed in (0, 1)]
    for seed, result in enumerate(results):
        n_test = len(split["test"]) if result.test_index is None else len(result.test_index)
        assert np.asarray(result.test_labels).shape == (n_test,)
        if name != "GAN with Disc. phi":  # shares the GAN of "GAN with bp"
            assert result.info["trained_as"] == f"replica {seed} of an ensemble of 2"
    with pytest.raises(ValueError, match="not a replica"):
        methods[name](data, split, 2, 2)


def test_gan_baselines_keep_checkpoints_that_a_rerun_continues_from(tiny, tmp_path):
    data, split = tiny
    budget = Budget(**{**TINY.to_dict(), "checkpoint_dir": str(tmp_path), "ensemble_runs": 2})
    first = make_methods(budget)["InfoGAN"](data, split, 3, 1)
    n = len(split["train"])
    assert [p.name for p in tmp_path.iterdir()] == [f"infogan_tiny_n{n}_3it_ens2.pt"]
    # a new process of the same command: the finished training is read back, not redone
    again = make_methods(budget)["InfoGAN"](data, split, 3, 1)
    np.testing.assert_array_equal(again.test_labels, first.test_labels)
    np.testing.assert_array_equal(again.val_labels, first.val_labels)
    ckpt = tmp_path / "gan.pt"
    x = data.x[split["train"]]
    trained = train_gans(data, x, "gan", max_iter=3, seeds=[0, 1], checkpoint=ckpt)
    resumed = train_gans(data, x, "gan", max_iter=3, seeds=[0, 1], checkpoint=ckpt)
    # the history's wall-clock seconds come from the checkpoint, not from a second training
    assert resumed[1].history["seconds"] == trained[1].history["seconds"]
    for a, b in zip(
        resumed[1].generator.parameters(), trained[1].generator.parameters(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_methods_are_reproducible_and_see_no_labels(tiny):
    data, split = tiny
    methods = make_methods(TINY)
    a = methods["KMeans"](data, split, 3, 1)
    shuffled = BenchData(
        data.name,
        data.x,
        np.zeros_like(data.y),
        3,
        **{k: getattr(data, k) for k in ("architecture_options", "n_latent", "batch_size")},
    )
    b = methods["KMeans"](shuffled, split, 3, 1)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    c1 = methods["InfoGAN"](data, split, 3, 0)
    c2 = make_methods(TINY)["InfoGAN"](data, split, 3, 0)
    np.testing.assert_array_equal(c1.test_labels, c2.test_labels)


def test_transductive_methods_need_room_for_all_held_out_points(tiny):
    data, split = tiny
    small = Budget(**{**TINY.to_dict(), "spectral_max": 10})
    with pytest.raises(ValueError, match="exceed the cap"):
        make_methods(small)["SC (rbf)"](data, split, 3, 0)


def test_run_method_scores_a_labelled_subset(tiny):
    data, split = tiny
    res = run_method(
        "GAN with bp",
        make_methods(TINY)["GAN with bp"],
        data,
        data.y,
        split,
        3,
        [0, 1],
        log=lambda s: None,
    )
    assert res["n_runs"] == 2
    assert res["runs"][0]["n_scored"] == {"val": min(10, len(split["val"])), "test": 10}


def test_harness_end_to_end(tmp_path):
    import paper_table1

    argv = [
        "--datasets",
        "synthetic,fashion",
        "--subsample",
        "300",
        "--runs",
        "2",
        "--max-iter",
        "4",
        "--bp-steps",
        "3",
        "--bp-max-points",
        "12",
        "--vae-iter",
        "3",
        "--data-dir",
        str(tmp_path / "nothing_staged"),
        "--out",
        str(tmp_path),
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
    ]
    results = paper_table1.main(argv)
    assert [r["dataset"] for r in results] == ["synthetic"]  # fashion is not staged: skipped
    # one training checkpoint per run of each GAN method, finished (a rerun would load, not
    # train); "GAN with bp" and "Disc. phi" share their GAN
    ckpts = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    n = len(paper_split(300, seed=0)["train"])
    assert ckpts == [
        f"{method}_synthetic_n{n}_4it_seed{s}.pt"
        for method in ("clustergan", "gan", "infogan")
        for s in (0, 1)
    ]
    saved = json.loads((tmp_path / "paper_table1_synthetic.json").read_text())
    assert "checkpoint_dir" not in saved["budget"]  # no local path in a result file
    assert saved["split_sizes"] == {k: len(v) for k, v in paper_split(300, seed=0).items()}
    assert not saved["paper_protocol"]
    assert "NOT the paper's protocol" in saved["budget_label"]
    assert saved["budget"]["max_iter"] == 4
    assert saved["runs"] == 2
    assert {"cpu", "torch"} <= set(saved["machine"])
    assert [m["method"] for m in saved["methods"]] == list(METHOD_KIND)
    for m in saved["methods"]:
        assert m["n_runs"] == 2
        assert len(m["runs"]) == 2
        assert m["best_by_val_purity"]["seed"] in (0, 1)
        for block in (m["best_by_val_purity"], m["mean"], *(r["test"] for r in m["runs"])):
            for key in ("purity", "acc", "nmi"):
                assert 0.0 <= block[key] <= 1.0
            assert -1.0 <= block["ari"] <= 1.0
        assert all(v >= 0.0 for v in m["sd"].values())
    assert saved["paper"]["ClusterGAN"] == [0.99, 0.99, 0.99]
    table = (tmp_path / "paper_table1.md").read_text()
    assert "## synthetic" in table
    assert "| ClusterGAN |" in table
    assert "0.99 / 0.99 / 0.99" in table


def test_harness_trains_clustergan_runs_as_one_ensemble(tmp_path):
    import paper_table1

    argv = ["--datasets", "synthetic", "--subsample", "300", "--runs", "3", "--max-iter", "4"]
    argv += ["--methods", "ClusterGAN", "--ensemble", "--out", str(tmp_path)]
    argv += ["--data-dir", str(tmp_path), "--checkpoint-dir", str(tmp_path / "ckpt")]
    (result,) = paper_table1.main(argv)
    (row,) = result["methods"]
    assert [r["seed"] for r in row["runs"]] == [0, 1, 2]
    assert [r["trained_as"] for r in row["runs"]] == [
        f"replica {s} of an ensemble of 3" for s in range(3)
    ]
    assert result["budget"]["ensemble_runs"] == 3
    n_train = len(paper_split(300, seed=0)["train"])
    # one checkpoint for the whole ensemble
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == [
        f"clustergan_synthetic_n{n_train}_4it_ens3.pt"
    ]


def test_harness_merge_keeps_every_run_s_rows_commands_and_machines(tmp_path):
    import paper_table1

    argv = ["--datasets", "synthetic", "--subsample", "300", "--runs", "1"]
    argv += ["--data-dir", str(tmp_path), "--out", str(tmp_path)]
    threads = torch.get_num_threads()
    try:  # --threads sets the process's torch threads: give the other tests theirs back
        paper_table1.main([*argv, "--methods", "KMeans", "--threads", "1"])
        (merged,) = paper_table1.main([*argv, "--methods", "PCA+GMM", "--threads", "2", "--merge"])
    finally:
        torch.set_num_threads(threads)
    assert [m["method"] for m in merged["methods"]] == ["KMeans", "PCA+GMM"]
    assert len(merged["commands"]) == 2
    assert [m["torch_threads"] for m in merged["machines"]] == [1, 2]
    saved = json.loads((tmp_path / "paper_table1_synthetic.json").read_text())
    assert saved["machines"] == merged["machines"]
    report = (tmp_path / "paper_table1.md").read_text()
    assert "(1 torch threads)" in report
    assert "(2 torch threads)" in report
    with pytest.raises(ValueError, match="different budgets"):
        paper_table1.main([*argv, "--methods", "NMF", "--max-iter", "7", "--merge"])


def test_harness_architecture_option_replaces_the_papers_network_option(tmp_path):
    import paper_table1
    from _baselines import architecture_options

    assert architecture_options(["critic_batch_norm=false", "hidden=[8, 8]", "output=linear"]) == {
        "critic_batch_norm": False,
        "hidden": [8, 8],
        "output": "linear",
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        architecture_options(["critic_batch_norm"])
    argv = ["--datasets", "synthetic", "--subsample", "300", "--runs", "2", "--max-iter", "4"]
    argv += ["--methods", "ClusterGAN", "--ensemble", "--out", str(tmp_path), "--tag", "nobn"]
    argv += ["--data-dir", str(tmp_path), "--checkpoint-dir", str(tmp_path / "ckpt")]
    (result,) = paper_table1.main([*argv, "--architecture-option", "critic_batch_norm=false"])
    assert result["budget"]["architecture_options"] == {"critic_batch_norm": False}
    assert result["budget_label"].endswith(
        "; the GAN methods' networks with critic_batch_norm=False"
    )
    n_train = len(paper_split(300, seed=0)["train"])
    # networks of their own: a checkpoint of their own, never the paper's networks' one
    (ckpt,) = (tmp_path / "ckpt").iterdir()
    assert ckpt.name == f"clustergan_synthetic_n{n_train}_4it_ens2_critic_batch_norm-False.pt"
    generator, encoder, critic = torch.load(ckpt, weights_only=False)["networks"]
    assert any(k.endswith("running_mean") for k in generator)  # BN stays in G and E
    assert any(k.endswith("running_mean") for k in encoder)
    assert not any("bn" in k or "running" in k for k in critic)
    assert "critic_batch_norm=False" in (tmp_path / "paper_table1.md").read_text()
    with pytest.raises(SystemExit):
        paper_table1.main([*argv, "--architecture-option", "critic_bn=false"])


def test_harness_curve_scores_every_run_along_training_and_survives_a_rerun(tmp_path):
    import paper_table1

    argv = ["--datasets", "synthetic", "--subsample", "300", "--runs", "2", "--max-iter", "20"]
    argv += ["--methods", "ClusterGAN,KMeans", "--ensemble", "--curve-every", "10"]
    argv += ["--tag", "long", "--out", str(tmp_path), "--data-dir", str(tmp_path)]
    argv += ["--checkpoint-dir", str(tmp_path / "ckpt")]
    (result,) = paper_table1.main(argv)
    assert result["tag"] == "long"
    assert (tmp_path / "paper_table1_synthetic_long.json").exists()
    cgan = result["methods"][0]
    for run in cgan["runs"]:
        assert [p["iteration"] for p in run["curve"]] == [10, 20]
        # the last point is the finished run's own score
        assert run["curve"][-1]["test"] == run["test"]
        assert run["curve"][-1]["val"] == run["val"]
        assert 0 < run["curve"][0]["seconds"] <= run["curve"][1]["seconds"]
    assert "curve" not in result["methods"][1]["runs"][0]
    table = (tmp_path / "paper_table1.md").read_text()
    assert "## synthetic (long)" in table
    assert "Convergence of ClusterGAN" in table
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| iteration |"))
    rows = lines[header + 2 : lines.index("", header)]
    assert [row.split(" | ")[0] for row in rows] == ["| 10", "| 20"]
    (tmp_path / "paper_table1.md").unlink()
    assert paper_table1.main(["--report", "--out", str(tmp_path)]) == []
    assert (tmp_path / "paper_table1.md").read_text() == table
    # a rerun loads the finished checkpoint instead of training, and keeps the curve
    (again,) = paper_table1.main(argv)
    assert [r["curve"] for r in again["methods"][0]["runs"]] == [r["curve"] for r in cgan["runs"]]
    with pytest.raises(SystemExit):
        paper_table1.main([*argv, "--tag", "../elsewhere"])
    with pytest.raises(SystemExit):  # the fit's callback comes every 300 // 100 = 3 iterations
        paper_table1.main([*argv, "--max-iter", "300", "--curve-every", "10"])


@pytest.fixture(scope="module")
def tiny_images():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 30)
    x = rng.uniform(0, 0.2, size=(60, 1, 28, 28)).astype(np.float32)
    x[y == 1, :, 8:20, 8:20] += 0.7  # class 1 has a bright square
    data = BenchData("tiny_images", x, y, 2, architecture="mnist", n_latent=4, batch_size=16)
    return data, paper_split(len(x), seed=0)


@pytest.mark.parametrize(
    "name", ["ClusterGAN", "InfoGAN", "GAN with bp", "GAN with Disc. phi", "VAE+GMM"]
)
def test_network_methods_take_images_through_the_conv_registry_entry(tiny_images, name):
    data, split = tiny_images
    budget = Budget(
        **{**TINY.to_dict(), "max_iter": 2, "bp_steps": 2, "bp_max_points": 4, "vae_iter": 2}
    )
    result = make_methods(budget)[name](data, split, 2, 0)
    n_test = len(split["test"]) if result.test_index is None else len(result.test_index)
    assert np.asarray(result.test_labels).shape == (n_test,)
    assert set(np.unique(result.test_labels)) <= {0, 1}


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=ON_CUDA)])
def test_image_table_trains_conv_ensembles_on_cuda(tiny_images, device):
    """The GAN methods of the image rows as the GPU command runs them (``--ensemble``): two
    replicas of the conv networks per method, on CUDA; every run labels its test points."""
    data, split = tiny_images
    budget = Budget(
        **{**TINY.to_dict(), "max_iter": 2, "bp_steps": 2, "bp_max_points": 4, "device": device}
    )
    budget.ensemble_runs, budget.curve_every = 2, 1
    methods = make_methods(budget)
    for name in ("ClusterGAN", "InfoGAN", "GAN with bp", "GAN with Disc. phi"):
        for seed in (0, 1):
            result = methods[name](data, split, 2, seed)
            n_test = len(split["test"]) if result.test_index is None else len(result.test_index)
            labels = np.asarray(result.test_labels)
            assert labels.shape == (n_test,)
            assert set(np.unique(labels)) <= {0, 1}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=ON_CUDA)])
def test_paper_mnist_end_to_end(tmp_path, device):
    from _helpers import SHARED_DATA

    if not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"the MNIST test images are not staged under {SHARED_DATA / 'mnist'}")
    import paper_mnist

    argv = [
        "--subsample",
        "300",
        "--max-iter",
        "2",
        "--ks",
        "9,10",
        "--bp-steps",
        "2",
        "--bp-points",
        "6",
        "--per-mode",
        "10",
        "--classifier-epochs",
        "1",
        "--device",
        device,
        "--data-dir",
        str(SHARED_DATA),
        "--out",
        str(tmp_path),
    ]
    res = paper_mnist.main(argv)
    assert res["device"] == device
    assert [t["K"] for t in res["table3"]] == [9, 10]
    assert res["table3"][1]["paper_acc"] == 0.95
    for t in res["table3"]:
        assert 0.0 <= t["purity"] <= 1.0
    s5 = res["section5"]
    assert 0.0 <= s5["mode_accuracy"] <= 1.0
    assert s5["algorithm1"]["n_images"] == 6
    assert s5["encoder"]["n_images"] == res["split_sizes"]["test"]
    assert len(s5["mode_to_digit"]) == 10
    assert np.asarray(s5["mode_votes"]).sum() == 10 * 10
    for name in res["figures"]:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert "Table 3" in (tmp_path / "paper_mnist.md").read_text()
    assert json.loads((tmp_path / "paper_mnist.json").read_text())["max_iter"] == 2


def test_paper_mnist_reads_the_table1_model_from_its_checkpoint(tmp_path):
    """With paper_table1.py's checkpoint folder, Section 2.6 scores the Table 1 run's finished
    K = 10 model (its file is neither retrained nor rewritten); other K get files of their own;
    --tag names the outputs; the recorded command names no local folder."""
    from _helpers import SHARED_DATA

    if not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"the MNIST test images are not staged under {SHARED_DATA / 'mnist'}")
    import paper_mnist
    import paper_table1

    folder, out = tmp_path / "ckpt", tmp_path / "out"
    common = ["--subsample", "300", "--max-iter", "3", "--data-dir", str(SHARED_DATA)]
    (table1,) = paper_table1.main(
        [*common, "--datasets", "mnist", "--methods", "ClusterGAN", "--runs", "1"]
        + ["--out", str(out), "--checkpoint-dir", str(folder)]
    )
    n_train = len(paper_split(300, seed=0)["train"])
    k10 = folder / f"clustergan_mnist_n{n_train}_3it_seed0.pt"
    before = (k10.stat().st_mtime_ns, k10.read_bytes())
    res = paper_mnist.main(
        [*common, "--ks", "9,10", "--bp-steps", "2", "--bp-points", "6", "--per-mode", "10"]
        + ["--classifier-epochs", "1", "--tag", "t", "--out", str(out)]
        + ["--checkpoint-dir", str(folder)]
    )
    assert (k10.stat().st_mtime_ns, k10.read_bytes()) == before
    assert (folder / f"clustergan_mnist_k9_n{n_train}_3it_seed0.pt").exists()
    (row,) = table1["methods"]
    ten = next(t for t in res["table3"] if t["K"] == 10)
    for key in ("purity", "nmi", "ari"):  # the same model scores the same test part
        assert ten[key] == pytest.approx(row["runs"][0]["test"][key])
    assert sorted(p.name for p in out.glob("paper_mnist*")) == [
        "paper_mnist_t.json",
        "paper_mnist_t.md",
        "paper_mnist_t_interpolation.png",
        "paper_mnist_t_samples_per_cluster.png",
    ]
    assert res["command"].endswith("--checkpoint-dir=checkpoints")
    assert str(folder) not in res["command"]


def test_bench_ensemble_times_each_product_shape_alone_and_batched():
    import bench_ensemble

    out = bench_ensemble.time_matmuls(n_runs=2, repeats=1)
    assert set(out) == {"float32", "bfloat16"}
    for entry in out.values():
        rows = entry["shapes"]
        assert [tuple(r["shape"]) for r in rows] == list(bench_ensemble.MATMUL_SHAPES)
        for r in rows:
            assert r["one_us"] > 0
            assert r["batched_us"] > 0
        assert entry["ratio_all_shapes"] > 0


def test_bench_ensemble_row_known_answer():
    import bench_ensemble

    # (64 x 720) @ (720 x 256): 2 * 64 * 720 * 256 = 23,592,960 operations in 1 ms alone,
    # 4.2 ms for the replicas batched
    row = bench_ensemble.matmul_row((64, 720, 256), 1e-3, 4.2e-3)
    assert row == {
        "shape": [64, 720, 256],
        "one_us": 1000.0,
        "batched_us": 4200.0,
        "ratio": 4.2,
        "one_gflops": 23.6,
    }


def test_bench_scale_simulates_negative_binomial_counts_and_fits_both_recipes_from_disk(
    tmp_path, monkeypatch
):
    import bench_scale

    # fits of 3 iterations last a fraction of a second: sample often enough to see their phases
    monkeypatch.setattr(bench_scale, "RSS_EVERY", 0.01)

    rng = np.random.default_rng(0)
    mean = np.repeat([[0.05, 0.7, 5.0]], 40_000, axis=0)
    counts = bench_scale.negative_binomial_csr(rng, mean, 2.0).toarray()
    # the negative binomial's mean m and variance m + m^2 / 2, and P(0) = (2 / (2 + m))^2
    np.testing.assert_allclose(counts.mean(0), [0.05, 0.7, 5.0], rtol=0.03)
    np.testing.assert_allclose(counts.var(0), [0.05125, 0.945, 17.5], rtol=0.06)
    np.testing.assert_allclose((counts == 0).mean(0), (2 / (2 + mean[0])) ** 2, atol=0.01)

    argv = ["--sizes", "400", "--genes", "300", "--iters", "3", "--chunk", "128"]
    result = bench_scale.main([*argv, "--out", str(tmp_path), "--workdir", str(tmp_path)])
    (row,) = result["rows"]
    assert row["data"]["n_cells"] == 400
    assert 0.01 < row["data"]["nonzero_fraction"] < 0.3
    assert [r["recipe"] for r in row["runs"]] == ["lognorm", "paper"]
    for run in row["runs"]:
        assert "failed" not in run
        assert -1.0 <= run["ari"] <= 1.0
        assert run["peak_rss_mb"] > 0
        assert any(k.endswith("training") for k in run["phase_seconds"])
        # a peak per phase, sampled, within the process's peak
        assert list(run["phase_peak_rss_mb"]) == list(run["phase_seconds"])
        sampled = [mb for mb in run["phase_peak_rss_mb"].values() if mb is not None]
        assert sampled
        # (the kernel's high-water mark lags its resident count a little)
        assert max(sampled) <= run["peak_rss_mb"] * 1.05 + 5
    assert not list(tmp_path.rglob("*.h5ad"))  # the simulated file is removed
    assert str(tmp_path) not in json.dumps(result)
    table = (tmp_path / "bench_scale.md").read_text()
    assert table.count("| 400 |") == 2
    # --keep-files: the file stays and a second run reads it instead of simulating again
    kept = tmp_path / "kept"
    kept.mkdir()
    argv = [*argv, "--recipes", "paper", "--out", str(tmp_path), "--workdir", str(kept)]
    first = bench_scale.main([*argv, "--keep-files"])
    (path,) = kept.glob("*.h5ad")
    stamp = path.stat().st_mtime_ns
    second = bench_scale.main([*argv, "--keep-files"])
    assert path.stat().st_mtime_ns == stamp
    assert second["rows"][0]["data"] == first["rows"][0]["data"]
    assert "--keep-files" not in second["command"]


def test_paper_readout_scores_three_readouts_per_replica(tmp_path):
    import paper_readout

    result = paper_readout.main(
        ["--dataset", "synthetic", "--max-iter", "4", "--runs", "2", "--out", str(tmp_path)]
    )
    rows = result["replicas"]
    assert [r["replica"] for r in rows] == [0, 1]
    n_test = sum(rows[0]["zc_occupancy"])
    assert n_test > 0
    assert result["test_nearest_distance"] > 0
    for row in rows:
        assert row["generated_nearest_distance"] > 0
        assert len(row["zc_occupancy"]) == 4
        assert sum(row["zc_occupancy"]) == n_test
        for key in ("kmeans_zn_zc", "argmax_zc", "kmeans_zn"):
            assert 0.25 <= row[key]["purity"] <= 1.0  # at least the largest of 4 even clusters
            assert -1.0 <= row[key]["ari"] <= 1.0
    assert (tmp_path / "paper_readout_synthetic.json").exists()
    assert "--checkpoint-dir" not in result["command"]
    argv = ["--dataset", "synthetic", "--max-iter", "4", "--runs", "2", "--out", str(tmp_path)]
    nobn = paper_readout.main([*argv, "--architecture-option", "critic_batch_norm=false"])
    assert nobn["architecture_options"] == {"critic_batch_norm": False}
    assert nobn["command"].endswith("--architecture-option critic_batch_norm=false")
    assert (tmp_path / "paper_readout_synthetic_critic_batch_norm-False.json").exists()
    assert nobn["replicas"] != rows  # other networks, other readouts


def test_paper_readout_reads_runs_trained_one_at_a_time(tmp_path):
    """--separate reads each seed's own checkpoint of a paper_table1.py run without --ensemble:
    the finished model, not trained again, whose KMeans readout is the table's."""
    import paper_readout
    import paper_table1

    folder = tmp_path / "ckpt"
    common = ["--max-iter", "4", "--runs", "2", "--out", str(tmp_path)]
    common += ["--data-dir", str(tmp_path), "--checkpoint-dir", str(folder)]
    (table1,) = paper_table1.main([*common, "--datasets", "synthetic", "--methods", "ClusterGAN"])
    files = sorted(folder.iterdir())
    assert [p.name for p in files] == [f"clustergan_synthetic_n7510_4it_seed{s}.pt" for s in (0, 1)]
    stamps = [p.stat().st_mtime_ns for p in files]
    result = paper_readout.main([*common, "--dataset", "synthetic", "--separate"])
    assert [p.stat().st_mtime_ns for p in sorted(folder.iterdir())] == stamps
    (row,) = table1["methods"]
    for run, replica in zip(row["runs"], result["replicas"], strict=True):
        for key in ("purity", "nmi", "ari"):
            assert replica["kmeans_zn_zc"][key] == pytest.approx(run["test"][key], abs=1e-4)
    assert " --separate --checkpoint-dir checkpoints" in result["command"]
    assert (tmp_path / "paper_readout_synthetic_separate.json").exists()


def test_stopping_rules_read_only_the_records():
    """Each label-free rule stops at the first reading that meets it, and at the cap otherwise."""
    from stopping_curve import rule_stop

    rng = np.random.default_rng(0)
    its = list(range(100, 1100, 100))
    drifting = [rng.integers(0, 4, size=(200, 3)) for _ in its]
    settled = rng.integers(0, 4, size=(200, 3))
    # labels drift until 600, then stay put: the first pair 200 apart that agree is (600, 800)
    train = drifting[:5] + [settled] * 5
    record = {
        "iterations": its,
        "train": train,
        "agreement": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.655, 0.66, 0.66, 0.66],
        "wasserstein": [5.0, 4.0, 3.0, 2.0, 1.5, 1.2, 1.0, 0.97, 0.96, 0.96],
    }
    assert rule_stop("stable", record, 2000) == 800
    # agreement: +0.06 over 600 -> 800 is above 0.01, +0.005 over 700 -> 900 is not
    assert rule_stop("agree", record, 2000) == 900
    # Wasserstein: |0.96 - 1.0| = 0.04 <= 5% of 1.0 at 900 (700 -> 900)
    assert rule_stop("wasserstein", record, 2000) == 900
    flat = dict(record, agreement=[0.1 * i for i in range(10)])
    assert rule_stop("agree", flat, 2000) == 2000
    with pytest.raises(ValueError, match="unknown rule"):
        rule_stop("patience", record, 2000)


def test_bench_gpu_times_fits_and_profiles_on_the_cpu(tmp_path):
    import anndata as ad
    from _helpers import make_counts
    from bench_gpu import fit_variant, profile_variant, write_table

    a = make_counts()
    a.obs["label"] = np.repeat(["x", "y", "z"], a.n_obs // 3)
    row, labels = fit_variant(a, 3, {"concurrent": False}, "cpu", 0, 20)
    assert isinstance(a, ad.AnnData)
    assert labels.shape == (a.n_obs,)
    assert row["iterations"] == {"genes": 20, "pcs": 20}
    assert set(row["phases"]) >= {"genes: training", "pcs: training", "pooling"}
    prof = profile_variant(a, 3, {"concurrent": False}, "cpu", 0, 10, top=3)
    assert prof["device_busy_seconds"] == 0
    assert len(prof["top_host"]) == 3
    assert prof["top_host"][0]["self_cpu_ms"] >= prof["top_host"][2]["self_cpu_ms"]
    row |= {"nmi": 0.5, "ari": 0.25, "labels_equal_eager": True}
    result = {
        "dataset": "toy",
        "n_obs": a.n_obs,
        "n_clusters": 3,
        "variants": {"eager": row},
        "profiles": {"eager": prof},
        "machine": {"cuda": None, "cpu": "a CPU", "torch": "2", "cuda_version": None},
    }
    text = write_table(result, tmp_path / "t.md")
    assert "| eager |" in text
    assert "0.500 / 0.250 | True" in text
