"""The user's own data: image folders, uint8 / NHWC array files, CIFAR binary files, checksummed CIFAR download."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from advx.data import ChecksumError, DataNotFoundError, cifar, download, load
from advx.data.download import Remote
from advx.data.image_folder import parse_size


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVX_HOME", str(tmp_path / "home"))


def _folder(root: Path, classes=("cat", "dog", "frog"), per=4, size=(12, 10), mode="RGB", seed=0) -> np.ndarray:
    """root/<class>/k.png; returns the uint8 pixels in the loader's order (classes sorted, files sorted)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in sorted(classes):
        (root / c).mkdir(parents=True)
        for k in range(per):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(a, mode).save(root / c / f"{k}.png")
            out.append(a)
    return np.stack(out)


def test_image_folder_reads_rgb_pixels_exactly_with_folder_names_as_classes(tmp_path):
    pixels = _folder(tmp_path / "images")
    d = load(str(tmp_path / "images"))
    assert d.classes == ["cat", "dog", "frog"] and d.x.shape == (12, 3, 10, 12)
    assert d.y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(d.x, torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255)
    assert "image folder" in d.source and "RGB" in d.source and "3 classes" in d.source


def test_image_folder_grey_jpeg_and_bmp_and_stratified_subset(tmp_path):
    root = tmp_path / "digits"
    _folder(root, classes=("a", "b"), per=5, mode="L")
    Image.new("L", (12, 10), 7).save(root / "a" / "x.jpg")
    Image.new("L", (12, 10), 9).save(root / "b" / "y.BMP")
    (root / "b" / "notes.txt").write_text("not an image")
    d = load(root)
    assert d.x.shape == (12, 1, 10, 12) and "grey" in d.source
    sub = load(root, n=4, seed=1)
    assert sub.y.tolist() == [0, 0, 1, 1] and "stratified subset of 4" in sub.source
    assert torch.equal(load(root, n=4, seed=1).x, sub.x)
    assert len(load(root, n=500)) == 12  # n past the folder's size takes every image


def test_image_folder_size_mismatch_names_the_files_and_resize_crop_fix_it(tmp_path):
    root = tmp_path / "images"
    _folder(root, per=2)
    Image.new("RGB", (20, 16)).save(root / "dog" / "big.png")
    with pytest.raises(ValueError, match=r"differ in size.*12x10.*20x16: .*big\.png.*--resize"):
        load(root)
    d = load(root, resize=8, center_crop=8)
    assert d.x.shape == (7, 3, 8, 8) and "resized to 8" in d.source and "center crop 8" in d.source
    d = load(root, resize=(6, 9))
    assert d.x.shape[-2:] == (6, 9)
    with pytest.raises(ValueError, match="smaller than the center crop"):
        load(root, center_crop=11)
    with pytest.raises(ValueError, match="image folders only"):
        load("fashion-mnist", resize=8)


def test_image_folder_layout_errors(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (4, 4)).save(flat / "one.png")
    with pytest.raises(ValueError, match=r"root/<class>/\*\.png.*one\.png"):
        load(flat)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path / "absent")
    broken = tmp_path / "broken" / "c"
    broken.mkdir(parents=True)
    (broken / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read .*bad\.png"):
        load(broken.parent)


def test_image_folder_split_folders(tmp_path):
    _folder(tmp_path / "ds" / "train", per=2, seed=1)
    test_px = _folder(tmp_path / "ds" / "test", per=1, seed=2)
    d = load(tmp_path / "ds", split="test")
    assert len(d) == 3 and d.classes == ["cat", "dog", "frog"]
    assert torch.equal(d.x, torch.from_numpy(test_px).permute(0, 3, 1, 2).float() / 255)
    assert len(load(tmp_path / "ds", split="train")) == 6


def test_parse_size():
    assert parse_size("32") == 32 and parse_size("32x48") == (32, 48) and parse_size(None) is None
    for bad in ("0", "abc", "1x2x3", "99999"):
        with pytest.raises(ValueError):
            parse_size(bad)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_uint8_nhwc_file_is_scaled_and_transposed_and_said_so(tmp_path, suffix):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 8, 6, 3), dtype=np.uint8)  # NHWC
    y = np.array([0, 1, 2, 1, 0])
    path = tmp_path / f"rgb{suffix}"
    if suffix == ".npz":
        np.savez(path, x=x, y=y)
    else:
        save_file({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, str(path))
    d = load(str(path))
    assert d.x.shape == (5, 3, 8, 6) and d.x.dtype == torch.float32
    assert torch.equal(d.x, torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255)
    assert "uint8 0-255 scaled" in d.source and "NHWC" in d.source


def test_file_float_range_and_dtype_errors(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.full((2, 3, 4, 4), 200.0, np.float32), y=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 1\].*200.*uint8"):
        load(str(path))
    np.savez(path, x=np.zeros((2, 3, 4, 4), np.int32), y=np.array([0, 1]))
    with pytest.raises(ValueError, match="floats in \\[0, 1\\] or uint8"):
        load(str(path))
    np.savez(path, x=np.zeros((2, 5), np.float32), y=np.array([0, 7]), classes=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="label 7 has no name"):
        load(str(path))
    np.savez(path, x=np.zeros((2, 5), np.float32), y=np.array([0, 1]))
    assert load(str(path)).x.shape == (2, 5)  # non-image rows (an MLP's features) still load


# ----------------------------------------------------------------------------- CIFAR
def _records(n: int, label_bytes: int, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    fine = np.arange(n, dtype=np.uint8) % (10 if label_bytes == 1 else 100)
    rows = [bytes([int(f)]) if label_bytes == 1 else bytes([int(f) // 5, int(f)]) for f in fine]
    raw = b"".join(r + img.tobytes() for r, img in zip(rows, images))
    return raw, images, fine


CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cifar10_tar(path: Path, n_test: int = 20, n_train: int = 4) -> np.ndarray:
    raw, images, _ = _records(n_test, 1)
    members = {"cifar-10-batches-bin/test_batch.bin": raw,
               "cifar-10-batches-bin/batches.meta.txt": ("\n".join(CIFAR10_NAMES) + "\n\n").encode()}
    for i in range(1, 6):
        members[f"cifar-10-batches-bin/data_batch_{i}.bin"] = _records(n_train, 1, seed=i)[0]
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return images


def test_cifar10_binary_records_from_archive_folder_and_bin(tmp_path):
    archive = tmp_path / "cifar-10-binary.tar.gz"
    images = _cifar10_tar(archive)
    d = load(str(archive))
    assert d.classes == CIFAR10_NAMES and d.x.shape == (20, 3, 32, 32)
    assert torch.equal(d.x, torch.from_numpy(images).float() / 255)
    assert d.y.tolist() == [i % 10 for i in range(20)] and "no checksum" in d.source
    assert len(load(str(archive), split="train")) == 20  # five batches of 4
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    folder = tmp_path / "cifar-10-batches-bin"
    assert torch.equal(load(str(folder)).x, d.x)
    one = load(str(folder / "test_batch.bin"), n=10)
    assert one.classes == CIFAR10_NAMES and sorted(one.y.tolist()) == list(range(10))  # stratified: one each
    (folder / "test_batch.bin").write_bytes(b"\x00" * 3075)
    with pytest.raises(ValueError, match="3073-byte CIFAR records"):
        load(str(folder))


def test_cifar100_binary_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    raw, images, fine = _records(30, 2)
    (folder / "test.bin").write_bytes(raw)
    (folder / "fine_label_names.txt").write_text("\n".join(f"class{i}" for i in range(100)))
    d = load(str(folder))
    assert d.y.tolist() == fine.tolist() and d.classes[29] == "class29" and len(d.classes) == 100
    assert torch.equal(d.x, torch.from_numpy(images).float() / 255)
    with pytest.raises(ValueError, match="3074-byte"):
        cifar.read_records(raw[:-1], 2)


def test_named_cifar10_downloads_with_checksum_into_advx_home(tmp_path, monkeypatch):
    """The real download path (fetch + verified checksum + cache), with the test's archive in place of the network."""
    archive = tmp_path / "served.tar.gz"
    _cifar10_tar(archive)
    body = archive.read_bytes()
    good = Remote("cifar-10-binary.tar.gz", ("https://example.invalid/cifar-10-binary.tar.gz",), sha256="",
                  md5=hashlib.md5(body).hexdigest())
    calls = []

    def opener(url, timeout):
        calls.append(url)
        return io.BytesIO(body)

    monkeypatch.setattr(download, "_default_opener", opener)
    variant = cifar.Variant(**{**cifar.CIFAR10.__dict__, "remote": good})
    monkeypatch.setitem(cifar.VARIANTS, "cifar10", variant)
    d = load("cifar10", n=10)
    assert calls == [good.urls[0]] and d.classes == CIFAR10_NAMES and len(d) == 10
    assert (tmp_path / "home" / "cifar10" / "cifar-10-binary.tar.gz").read_bytes() == body
    assert "downloaded, checksum verified" in d.source
    d2 = load("cifar10", n=10)  # cached and verified: no second download
    assert calls == [good.urls[0]] and torch.equal(d2.x, d.x) and "checksum verified" in d2.source
    bad = cifar.Variant(**{**cifar.CIFAR10.__dict__, "name": "cifar10", "remote": Remote(
        "cifar-10-binary.tar.gz", good.urls, sha256="", md5="0" * 32)})
    (tmp_path / "home" / "cifar10" / "cifar-10-binary.tar.gz").unlink()
    for f in (tmp_path / "home" / "cache").glob("cifar10-*"):
        f.unlink()
    monkeypatch.setitem(cifar.VARIANTS, "cifar10", bad)
    with pytest.raises(ChecksumError, match="MD5"):
        load("cifar10")
    assert not (tmp_path / "home" / "cifar10" / "cifar-10-binary.tar.gz").exists()


def test_named_cifar_offline_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("ADVX_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match=r"(?s)lacks cifar-100-binary\.tar\.gz.*binary version"):
        load("cifar100")
    assert cifar.CIFAR10.remote.md5 == "c32a1d4ab5d03f1284b67883e8d87530"  # the CIFAR page's published MD5s
    assert cifar.CIFAR100.remote.md5 == "03b5dce01913d631647c71ecec9e9cb8"
    assert cifar.CIFAR10.remote.urls == ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",)
