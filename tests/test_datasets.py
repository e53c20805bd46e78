import numpy as np
import pytest

import scgan_cluster as scg


def test_synthetic_matches_the_papers_recipe():
    a = scg.datasets.synthetic()
    assert a.shape == (10000, 100)
    assert a.obs["label"].value_counts().to_dict() == {str(k): 2500 for k in range(4)}
    w, u = a.uns["synthetic"]["W"], a.uns["synthetic"]["U"]
    assert w.shape == (10, 2)
    assert u.shape == (100, 10)
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    np.testing.assert_allclose(a.X, sig(sig(a.obsm["Z"] @ w.T) @ u.T), rtol=1e-5)
    assert a.X.dtype == np.float32
    assert a.X.min() > 0
    assert a.X.max() < 1
    b = scg.datasets.synthetic(random_state=0)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, scg.datasets.synthetic(random_state=1).X)
    assert scg.datasets.DATASETS["synthetic"] is scg.datasets.synthetic


def test_synthetic_options_and_errors():
    a = scg.datasets.synthetic(10, 3, n_features=7, n_hidden=4)
    assert a.shape == (30, 7)
    assert a.obs["label"].nunique() == 3
    with pytest.raises(ValueError, match="n_per_cluster"):
        scg.datasets.synthetic(0)
    with pytest.raises(ValueError, match="cluster_std"):
        scg.datasets.synthetic(cluster_std=0)


@pytest.mark.slow
def test_mlp_clustergan_clusters_the_synthetic_data():
    a = scg.datasets.synthetic()
    scg.tl.clustergan(a, 4, preprocess=False, max_iter=5000, random_state=0)
    acc = scg.metrics.hungarian_accuracy(a.obs["label"], a.obs["clustergan"])
    assert acc >= 0.95


# ---------------------------------------------------------------- IDX, MNIST, Fashion-MNIST
import gzip  # noqa: E402

from _helpers import SHARED_DATA, TINY_CONV  # noqa: E402

_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def write_idx(path, array, *, gz=False, code=None):
    array = np.asarray(array)
    code = _CODES[array.dtype.type] if code is None else code
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, dtype, gz):
    a = (np.arange(2 * 3 * 4) - (0 if dtype == np.uint8 else 7)).reshape(2, 3, 4).astype(dtype)
    # the name says nothing: compression is recognised by content
    out = scg.datasets.read_idx(write_idx(tmp_path / "f", a, gz=gz))
    assert out.dtype == np.dtype(dtype)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, a)


def test_read_idx_errors(tmp_path):
    good = write_idx(tmp_path / "g", np.zeros((2, 2), dtype=np.uint8)).read_bytes()
    cases = {
        "magic": (b"\x01" + good[1:], "two zero bytes"),
        "type": (good[:2] + b"\x07" + good[3:], "unknown IDX type code"),
        "truncated": (good[:-1], "truncated"),
        "trailing": (good + b"\x00", "trailing bytes"),
        "header": (good[:6], "inside its IDX header"),
        "ndim0": (b"\x00\x00\x08\x00", "0 dimensions"),
        "gzip": (gzip.compress(good)[:-6], "cannot be decompressed"),
    }
    for name, (raw, msg) in cases.items():
        p = tmp_path / name
        p.write_bytes(raw)
        with pytest.raises(ValueError, match=msg):
            scg.datasets.read_idx(p)


def _write_mnist_like(folder, *, splits=("train", "test"), n=(6, 4), gz=True, dotted=False):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    out = {}
    for split, k in zip(splits, n, strict=False):
        prefix = "train" if split == "train" else "t10k"
        sep = "." if dotted else "-"
        ext = ".gz" if gz else ""
        images = rng.integers(0, 256, size=(k, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=k, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images{sep}idx3-ubyte{ext}", images, gz=gz)
        write_idx(folder / f"{prefix}-labels{sep}idx1-ubyte{ext}", labels, gz=gz)
        out[split] = (images, labels)
    return out


@pytest.mark.parametrize(("gz", "dotted"), [(True, False), (False, False), (False, True)])
def test_mnist_on_written_idx_files(tmp_path, gz, dotted):
    data = _write_mnist_like(tmp_path / "m", gz=gz, dotted=dotted)
    a = scg.datasets.mnist(tmp_path / "m")
    assert a.shape == (10, 784)
    assert a.uns["image_shape"] == [1, 28, 28]
    assert a.X.dtype == np.float32
    np.testing.assert_allclose(a.X[:6], data["train"][0].reshape(6, -1) / 255, rtol=1e-6)
    np.testing.assert_allclose(a.X[6:], data["test"][0].reshape(4, -1) / 255, rtol=1e-6)
    assert a.obs["label"].dtype == np.int64
    np.testing.assert_array_equal(
        a.obs["label"], np.concatenate([data["train"][1], data["test"][1]])
    )
    assert a.obs["split"].tolist() == ["train"] * 6 + ["test"] * 4
    t = scg.datasets.mnist(tmp_path / "m", split="test")
    assert t.n_obs == 4
    np.testing.assert_array_equal(t.X, a.X[6:])
    assert scg.datasets.DATASETS["mnist"] is scg.datasets.mnist


def test_mnist_partial_files_and_errors(tmp_path, capsys):
    _write_mnist_like(tmp_path / "m", splits=("test",), n=(3,))
    scg.settings.verbosity = "warning"
    a = scg.datasets.mnist(tmp_path / "m")  # "all": what is present, with a warning
    assert a.n_obs == 3
    assert set(a.obs["split"]) == {"test"}
    assert "only the test split is present" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="pass split='test'"):
        scg.datasets.mnist(tmp_path / "m", split="train")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        scg.datasets.mnist(tmp_path / "nothing")
    with pytest.raises(ValueError, match="split must be"):
        scg.datasets.mnist(tmp_path / "m", split="validation")
    empty = tmp_path / "e"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="missing"):
        scg.datasets.mnist(empty)
    # wrong contents
    bad = tmp_path / "bad"
    _write_mnist_like(bad, splits=("test",), n=(3,), gz=False)
    write_idx(bad / "t10k-labels-idx1-ubyte", np.array([1, 2], dtype=np.uint8))
    with pytest.raises(ValueError, match="3 images .* but 2 labels"):
        scg.datasets.mnist(bad)
    write_idx(bad / "t10k-labels-idx1-ubyte", np.array([1, 2, 12], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"labels must lie in 0..9"):
        scg.datasets.mnist(bad)
    write_idx(bad / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], dtype=np.int32))
    with pytest.raises(ValueError, match="unsigned-byte labels"):
        scg.datasets.mnist(bad)
    write_idx(bad / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], dtype=np.uint8))
    write_idx(bad / "t10k-images-idx3-ubyte", np.zeros((3, 784), dtype=np.uint8))
    with pytest.raises(ValueError, match="3 dimensions"):
        scg.datasets.mnist(bad)


def test_fashion_mnist_on_written_idx_files(tmp_path):
    data = _write_mnist_like(tmp_path / "f")
    a = scg.datasets.fashion_mnist(tmp_path / "f")
    assert a.uns["dataset"]["classes"][9] == "Ankle boot"
    fine = np.concatenate([data["train"][1], data["test"][1]])
    np.testing.assert_array_equal(a.obs["label"], fine)
    b = scg.datasets.fashion_mnist(tmp_path / "f", n_classes=5)
    groups = {0: 0, 3: 0, 1: 1, 2: 2, 4: 2, 6: 2, 8: 3, 5: 4, 7: 4, 9: 4}
    np.testing.assert_array_equal(b.obs["label"], [groups[int(v)] for v in fine])
    np.testing.assert_array_equal(b.obs["label_fine"], fine)
    assert len(b.uns["dataset"]["classes"]) == 5
    with pytest.raises(ValueError, match="n_classes"):
        scg.datasets.fashion_mnist(tmp_path / "f", n_classes=3)


def test_image_loader_feeds_the_conv_networks(tmp_path):
    _write_mnist_like(tmp_path / "m", n=(16, 4))
    a = scg.datasets.mnist(tmp_path / "m")
    model = scg.ClusterGAN(
        3, architecture_options=TINY_CONV, max_iter=2, batch_size=8, n_latent=3
    ).fit(a)
    assert model.architecture == "mnist"
    assert model.generate(2).shape == (2, 1, 28, 28)


def test_staged_mnist():
    folder = SHARED_DATA / "mnist"
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the staged MNIST test images are not in {folder}")
    a = scg.datasets.mnist(folder, split="test")
    assert a.shape == (10000, 784)
    assert np.bincount(a.obs["label"]).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    assert a.X.min() == 0.0
    assert a.X.max() == 1.0
    # the first test digit is a 7 with ink in the middle, not at the border
    img = a.X[0].reshape(28, 28)
    assert a.obs["label"].iloc[0] == 7
    assert img[:4].sum() == 0
    assert img[8:20, 8:20].sum() > 20
    train_labels = scg.datasets.read_idx(folder / "train-labels-idx1-ubyte.gz")
    assert np.bincount(train_labels).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        with pytest.raises(FileNotFoundError, match="split='test'"):
            scg.datasets.mnist(folder, split="train")


def test_staged_fashion_mnist_labels():
    folder = SHARED_DATA / "fashion_mnist"
    labels = list(folder.glob("*labels-idx1-ubyte*")) if folder.is_dir() else []
    if not labels:
        pytest.skip(f"no staged Fashion-MNIST label files in {folder}")
    for p in labels:
        y = scg.datasets.read_idx(p)
        assert y.dtype == np.uint8
        counts = np.bincount(y, minlength=10)
        assert len(counts) == 10
        assert (counts == counts[0]).all()  # Fashion-MNIST is balanced


# ---------------------------------------------------------------- Pendigits
def _write_pendigits(folder, *, suffix=""):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    out = {}
    for split, name, n in (("train", "pendigits.tra", 5), ("test", "pendigits.tes", 3)):
        x = rng.integers(0, 101, size=(n, 16))
        y = rng.integers(0, 10, size=n)
        lines = [",".join(f"{v:3d}" for v in row) + f",{c}" for row, c in zip(x, y, strict=True)]
        (folder / (name + suffix)).write_text("\n".join(lines) + "\n")
        out[split] = (x, y)
    return out


@pytest.mark.parametrize("suffix", ["", ".csv"])
def test_pendigits_on_written_files(tmp_path, suffix):
    data = _write_pendigits(tmp_path / "p", suffix=suffix)
    a = scg.datasets.pendigits(tmp_path / "p")
    assert a.shape == (8, 16)
    assert list(a.var_names[:4]) == ["x1", "y1", "x2", "y2"]
    np.testing.assert_allclose(a.X, np.vstack([data["train"][0], data["test"][0]]) / 100, rtol=1e-6)
    np.testing.assert_array_equal(
        a.obs["label"], np.concatenate([data["train"][1], data["test"][1]])
    )
    assert a.obs["split"].tolist() == ["train"] * 5 + ["test"] * 3
    assert scg.datasets.pendigits(tmp_path / "p", split="test").n_obs == 3
    # a file path works as well as its folder
    assert (
        scg.datasets.pendigits(tmp_path / "p" / ("pendigits.tra" + suffix), split="train").n_obs
        == 5
    )


def test_pendigits_errors(tmp_path):
    folder = tmp_path / "p"
    _write_pendigits(folder)
    (folder / "pendigits.tes").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="line 1: expected the UCI layout"):
        scg.datasets.pendigits(folder)
    (folder / "pendigits.tes").write_text(",".join(["1"] * 16) + ",x\n")
    with pytest.raises(ValueError, match="expected integers"):
        scg.datasets.pendigits(folder)
    (folder / "pendigits.tes").write_text(",".join(["101"] * 16) + ",1\n")
    with pytest.raises(ValueError, match=r"0..100"):
        scg.datasets.pendigits(folder)
    (folder / "pendigits.tes").unlink()
    with pytest.raises(FileNotFoundError, match="pendigits.tes"):
        scg.datasets.pendigits(folder, split="test")
    assert scg.datasets.pendigits(folder).n_obs == 5  # "all": the present split, with a warning


def test_staged_pendigits():
    folder = SHARED_DATA / "pendigits"
    if not (folder / "pendigits.tra.csv").is_file() and not (folder / "pendigits.tra").is_file():
        pytest.skip(f"the staged Pendigits files are not in {folder}")
    a = scg.datasets.pendigits(folder)
    assert a.shape == (10992, 16)
    train = a.obs["split"] == "train"
    assert np.bincount(a.obs["label"][train]).tolist() == [
        780,
        779,
        780,
        719,
        780,
        720,
        720,
        778,
        719,
        719,
    ]
    assert np.bincount(a.obs["label"][~train]).tolist() == [
        363,
        364,
        364,
        336,
        364,
        335,
        336,
        364,
        336,
        336,
    ]
    assert a.X.min() == 0.0
    assert a.X.max() == 1.0
    np.testing.assert_allclose(
        a.X[0] * 100, [47, 100, 27, 81, 57, 37, 26, 0, 0, 23, 56, 53, 100, 90, 40, 98]
    )
    assert a.obs["label"].iloc[0] == 8


# ---------------------------------------------------------------- COIL-20
def test_coil20_on_a_written_mat_file_is_upright(tmp_path):
    from scipy.io import savemat

    n, side = 6, 8
    images = np.zeros((n, side, side))
    images[:, 0, :] = 1.0  # a bright top row, a dim left column
    images[:, :, 0] = 0.5
    images[:, 0, 0] = 1.0
    fea = np.stack([im.ravel(order="F") for im in images])  # column-major, as COIL20.mat stores
    gnd = np.array([[1], [1], [2], [2], [3], [3]], dtype=np.uint8)
    savemat(tmp_path / "COIL20.mat", {"fea": fea, "gnd": gnd})
    a = scg.datasets.coil20(tmp_path)  # the folder works as well as the file
    assert a.shape == (n, side * side)
    assert a.uns["image_shape"] == [1, side, side]
    img = a.X[0].reshape(side, side)
    np.testing.assert_allclose(img[0], 1.0)
    np.testing.assert_allclose(img[1:, 0], 0.5)
    np.testing.assert_array_equal(a.obs["label"], [0, 0, 1, 1, 2, 2])
    assert set(a.obs["split"]) == {"all"}
    savemat(tmp_path / "x.mat", {"fea": fea * 255, "gnd": gnd})
    np.testing.assert_allclose(scg.datasets.coil20(tmp_path / "x.mat").X, a.X, rtol=1e-6)
    savemat(tmp_path / "y.mat", {"X": fea, "Y": gnd})
    with pytest.raises(ValueError, match="'fea' and 'gnd'"):
        scg.datasets.coil20(tmp_path / "y.mat")
    savemat(tmp_path / "z.mat", {"fea": fea[:, :10], "gnd": gnd})
    with pytest.raises(ValueError, match="not square"):
        scg.datasets.coil20(tmp_path / "z.mat")
    with pytest.raises(FileNotFoundError, match="COIL20.mat"):
        scg.datasets.coil20(tmp_path / "missing")


def test_staged_coil20():
    path = SHARED_DATA / "coil20" / "COIL20.mat"
    if not path.is_file():
        pytest.skip(f"the staged COIL-20 file is not at {path}")
    from scipy.io import loadmat

    a = scg.datasets.coil20(path)
    assert a.shape == (1440, 1024)
    assert a.uns["image_shape"] == [1, 32, 32]
    assert np.bincount(a.obs["label"]).tolist() == [72] * 20
    fea = loadmat(path)["fea"]
    # pixel (row r, column c) of the upright image is entry c * 32 + r of the stored row
    img = a.X[100].reshape(32, 32)
    assert img[3, 17] == pytest.approx(fea[100, 17 * 32 + 3])
    assert img[17, 3] == pytest.approx(fea[100, 3 * 32 + 17])
