"""What a loader returns, where data lives, and how subsets are drawn.

:class:`LabeledData` is the one type every loader returns: images as float32
(N, 1, 28, 28) in [0, 1], int64 labels, class names, and a line saying which
source was actually used (so every report can say it). :func:`data_home` is
``$ADVX_HOME`` (default ``~/.cache/advx``), the cache for downloads and parsed
tensors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["LabeledData", "DataNotFoundError", "ChecksumError", "data_home", "stratified_indices"]


class DataNotFoundError(FileNotFoundError):
    """No source of a data set is available; the message names how to install each one."""


class ChecksumError(OSError):
    """A downloaded file does not have the published SHA-256; nothing was kept."""


@dataclass
class LabeledData:
    """Images and labels of one split of a data set.

    ``x``: float32 (N, C, H, W) in ``bounds`` (a user's own file may hold other (N, ...) shapes);
    ``y``: int64 (N,);
    ``classes[k]`` names label k; ``source`` says in words which source was used.
    """

    x: Tensor
    y: Tensor
    classes: list[str]
    name: str
    source: str
    split: str = "test"
    bounds: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.x.dim() < 2 or self.x.dtype != torch.float32:
            raise ValueError(f"x must be float32 (N, C, H, W) or (N, ...), got {self.x.dtype} {tuple(self.x.shape)}")
        if self.y.shape != (self.x.shape[0],) or self.y.dtype != torch.int64:
            raise ValueError(f"y must be int64 ({self.x.shape[0]},), got {self.y.dtype} {tuple(self.y.shape)}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, n: int | None, seed: int = 0) -> LabeledData:
        """A deterministic class-stratified subset of ``n`` samples (all of them for ``n=None``)."""
        if n is None:
            return self
        idx = torch.from_numpy(stratified_indices(self.y.numpy(), n, seed))
        return LabeledData(self.x[idx], self.y[idx], list(self.classes), self.name,
                           f"{self.source}; {n}-sample stratified subset, seed {seed}", self.split, self.bounds)

    def class_counts(self) -> list[int]:
        return torch.bincount(self.y, minlength=len(self.classes)).tolist()


def data_home() -> Path:
    """``$ADVX_HOME`` or ``~/.cache/advx``: downloads and parsed-tensor caches go here."""
    return Path(os.environ.get("ADVX_HOME") or Path.home() / ".cache" / "advx").expanduser()


def stratified_indices(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` indices into ``y``, each class represented in proportion to its frequency.

    Per-class quotas use largest remainders; which samples of a class are taken is
    a seeded permutation. The result is sorted (it keeps the data set's order), so
    the subset for a larger ``n`` is not required to contain the smaller one.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int or None, got {type(n).__name__}")
    total = len(y)
    if not 0 < n <= total:
        raise ValueError(f"n must be in 1..{total} (the split's size), got {n}")
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * (n / total)
    quota = np.floor(exact).astype(np.int64)
    short = n - int(quota.sum())
    if short:
        order = np.lexsort((classes, -(exact - quota)))  # largest remainder first, ties by class
        quota[order[:short]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked))
