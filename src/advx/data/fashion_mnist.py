"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, https://arxiv.org/abs/1708.07747): 60k/10k 28x28 grey images.

Sources, in order: the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``); the official files already in
``$ADVX_HOME/fashion-mnist``; the official files downloaded there with their
published SHA-256 checked (unless ``ADVX_OFFLINE=1``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from advx.data.base import ChecksumError, DataNotFoundError, data_home
from advx.data.download import Remote, downloads_allowed, fetch, sha256sum

__all__ = ["CLASSES", "DEBIAN_DIR", "REMOTES", "locate"]

log = logging.getLogger(__name__)

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_FILES = {
    ("train", "images"): ("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    ("train", "labels"): ("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    ("test", "images"): ("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    ("test", "labels"): ("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
}
#: (split, "images" | "labels") -> the official file, its mirrors and SHA-256
REMOTES = {k: Remote(name, tuple(m + name for m in MIRRORS), sha) for k, (name, sha) in _FILES.items()}

INSTALL_HINT = (
    "Fashion-MNIST is not available. Install it one of these ways:\n"
    "  * Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist\n"
    "  * with network access: unset ADVX_OFFLINE and advx downloads the official files (SHA-256 checked) "
    "into $ADVX_HOME/fashion-mnist (default ~/.cache/advx/fashion-mnist)\n"
    "  * by hand: put the four *-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist "
    "into $ADVX_HOME/fashion-mnist"
)


def locate(split: str, source: str | None = None) -> tuple[Path, Path, str]:
    """(images file, labels file, source description) for ``split``; downloads if needed and allowed.

    ``source`` forces one source: "debian" or "official" (cache or download).
    """
    names = [REMOTES[(split, kind)].filename for kind in ("images", "labels")]
    if source in (None, "debian"):
        files = [DEBIAN_DIR / n for n in names]
        if all(f.exists() for f in files):
            return files[0], files[1], "Debian dataset-fashion-mnist (official 60k/10k)"
        if source == "debian":
            raise DataNotFoundError(f"{DEBIAN_DIR} lacks {names}.\n{INSTALL_HINT}")
    if source not in (None, "official"):
        raise ValueError(f"source must be None, 'debian' or 'official' for fashion-mnist, got {source!r}")
    directory = data_home() / "fashion-mnist"
    remotes = [REMOTES[(split, kind)] for kind in ("images", "labels")]
    cached = [directory / r.filename for r in remotes]
    if all(f.exists() and sha256sum(f) == r.sha256 for f, r in zip(cached, remotes)):
        return cached[0], cached[1], f"official Fashion-MNIST files (SHA-256 verified, in {directory})"
    if not downloads_allowed():
        raise DataNotFoundError(f"ADVX_OFFLINE is set and {directory} lacks {names}.\n{INSTALL_HINT}")
    try:
        got = [fetch(r, directory) for r in remotes]
    except ChecksumError:
        raise
    except OSError as e:
        raise DataNotFoundError(f"download failed ({e}).\n{INSTALL_HINT}") from e
    return got[0], got[1], f"official Fashion-MNIST files (downloaded, SHA-256 verified, in {directory})"


def check_arrays(images: np.ndarray, labels: np.ndarray, split: str) -> None:
    expected = 60000 if split == "train" else 10000
    if images.shape != (expected, 28, 28) or labels.shape != (expected,):
        raise ValueError(f"fashion-mnist {split}: expected {expected} 28x28 images, got {images.shape}, {labels.shape}")
