"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html), binary version.

The official "python version" of CIFAR is pickled, and advx never unpickles, so
advx reads the published **binary version** ("suitable for C programs"):

* CIFAR-10: ``cifar-10-binary.tar.gz`` -> ``cifar-10-batches-bin/data_batch_{1..5}.bin``,
  ``test_batch.bin``: 10,000 records of 3,073 bytes each (1 label byte, then
  1024 red, 1024 green, 1024 blue bytes, row-major 32x32); class names in
  ``batches.meta.txt``, one a line.
* CIFAR-100: ``cifar-100-binary.tar.gz`` -> ``cifar-100-binary/train.bin``, ``test.bin``:
  records of 3,074 bytes (coarse label byte, fine label byte, 3,072 pixel bytes);
  names in ``fine_label_names.txt`` / ``coarse_label_names.txt``.

Sources, in order: the archive or its extracted folder in ``$ADVX_HOME/cifar10``
(``cifar100``); else the official archive downloaded there, its published
checksum (MD5 from the CIFAR page; SHA-256 where known) verified before it is
kept (unless ``ADVX_OFFLINE=1``). A path the user gives (``--data
path/cifar-10-binary.tar.gz``, the extracted ``cifar-10-batches-bin`` folder,
or one ``.bin`` batch) is read as it is, without a checksum.
"""

from __future__ import annotations

import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advx.data.base import ChecksumError, DataNotFoundError, data_home
from advx.data.download import Remote, downloads_allowed, fetch, verified

__all__ = ["CIFAR10", "CIFAR100", "VARIANTS", "read_records", "read_cifar", "read_cifar_names", "locate", "variant_of"]

log = logging.getLogger(__name__)

PIXELS = 3 * 32 * 32
#: largest file read into memory as CIFAR records (the official train.bin is 154 MB)
MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class Variant:
    name: str            # advx data set name
    label_bytes: int     # 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine)
    folder: str          # the folder inside the archive
    train: tuple[str, ...]
    test: tuple[str, ...]
    names: str           # class-name file (fine labels for CIFAR-100)
    remote: Remote
    sizes: tuple[int, int]  # official (train, test) record counts

    @property
    def record(self) -> int:
        return self.label_bytes + PIXELS


CIFAR10 = Variant(
    "cifar10", 1, "cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)), ("test_batch.bin",),
    "batches.meta.txt",
    Remote("cifar-10-binary.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
           sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
           md5="c32a1d4ab5d03f1284b67883e8d87530"),
    (50000, 10000),
)
CIFAR100 = Variant(
    "cifar100", 2, "cifar-100-binary", ("train.bin",), ("test.bin",), "fine_label_names.txt",
    Remote("cifar-100-binary.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",),
           sha256="", md5="03b5dce01913d631647c71ecec9e9cb8"),
    (50000, 10000),
)
VARIANTS = {"cifar10": CIFAR10, "cifar100": CIFAR100}

INSTALL_HINT = (
    "CIFAR is not available offline. Either:\n"
    "  * with network access: unset ADVX_OFFLINE and advx downloads the official binary archive "
    "(checksum verified) into $ADVX_HOME/{name} (default ~/.cache/advx/{name})\n"
    "  * by hand: put {file} from https://www.cs.toronto.edu/~kriz/cifar.html (the binary version) "
    "into $ADVX_HOME/{name}, or pass its path to --data"
)


def read_records(raw: bytes, label_bytes: int, what: str = "CIFAR data") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels uint8 (N,)) from CIFAR binary records; CIFAR-100 gives the
    fine label (the second byte)."""
    record = label_bytes + PIXELS
    if not raw or len(raw) % record:
        raise ValueError(f"{what}: {len(raw)} bytes is not a whole number of {record}-byte CIFAR records "
                         f"({'CIFAR-10' if label_bytes == 1 else 'CIFAR-100'} binary format)")
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    return rows[:, label_bytes:].reshape(-1, 3, 32, 32).copy(), rows[:, label_bytes - 1].copy()


def _names(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class _Archive:
    """Members of a CIFAR tar.gz, or files of its extracted folder, read by base name (nothing extracted)."""

    def __init__(self, path: Path):
        self.path = path
        self.tar = tarfile.open(path, "r:*") if path.is_file() else None
        self.members = {}
        if self.tar is not None:
            for m in self.tar.getmembers():
                if m.isfile():
                    self.members.setdefault(Path(m.name).name, m)

    def has(self, name: str) -> bool:
        return name in self.members if self.tar is not None else (self.path / name).is_file()

    def read(self, name: str) -> bytes:
        if self.tar is not None:
            m = self.members[name]
            if m.size > MAX_BYTES:
                raise ValueError(f"{self.path}: member {name} is {m.size} bytes, more than a CIFAR file holds")
            f = self.tar.extractfile(m)
            assert f is not None
            return f.read()
        p = self.path / name
        if p.stat().st_size > MAX_BYTES:
            raise ValueError(f"{p}: {p.stat().st_size} bytes, more than a CIFAR file holds")
        return p.read_bytes()

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()


def variant_of(path: str | Path) -> Variant | None:
    """The CIFAR variant a user's path holds (archive, extracted folder, or .bin), by its file names."""
    p = Path(path)
    name = p.name.lower()
    for v in VARIANTS.values():
        if name in (v.remote.filename, v.folder) or name in v.train + v.test:
            return v
    if p.is_dir():
        for v in VARIANTS.values():
            if all((p / f).is_file() for f in v.test) or all((p / f).is_file() for f in v.train):
                return v
    return None


def read_cifar(path: str | Path, variant: Variant, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images, labels, class names) of ``split`` from an archive, an extracted folder, or one ``.bin`` file."""
    path = Path(path)
    if path.suffix == ".bin":
        if path.stat().st_size > MAX_BYTES:
            raise ValueError(f"{path}: {path.stat().st_size} bytes, more than a CIFAR file holds")
        images, labels = read_records(path.read_bytes(), variant.label_bytes, str(path))
        names_file = path.parent / variant.names
        names = _names(names_file.read_text()) if names_file.is_file() else []
        return images, labels, _check_names(names, labels, variant, path)
    archive = _Archive(path)
    try:
        files = variant.train if split == "train" else variant.test
        missing = [f for f in files if not archive.has(f)]
        if missing:
            raise ValueError(f"{path}: no {', '.join(missing)} for the {split} split of {variant.name}")
        parts = [read_records(archive.read(f), variant.label_bytes, f"{path}/{f}") for f in files]
        names = _names(archive.read(variant.names).decode("utf-8", "replace")) if archive.has(variant.names) else []
    finally:
        archive.close()
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels, _check_names(names, labels, variant, path)


def _check_names(names: list[str], labels: np.ndarray, variant: Variant, path: Path) -> list[str]:
    top = int(labels.max()) + 1 if len(labels) else 0
    if not names:
        log.warning("%s: no %s beside the data; classes are numbered", path, variant.names)
        return [str(i) for i in range(max(top, 10 if variant is CIFAR10 else 100))]
    if top > len(names):
        raise ValueError(f"{path}: label {top - 1} has no name among the {len(names)} in {variant.names}")
    return names


def locate(variant: Variant, *, download: bool | None = None) -> tuple[Path, str]:
    """(archive or extracted folder, source description) in ``$ADVX_HOME/<name>``; downloads if needed and allowed."""
    directory = data_home() / variant.name
    folder = directory / variant.folder
    if folder.is_dir() and all((folder / f).is_file() for f in variant.test):
        return folder, f"official {variant.name} binary files (extracted, in {folder})"
    archive = directory / variant.remote.filename
    hint = INSTALL_HINT.format(name=variant.name, file=variant.remote.filename)
    if archive.is_file():
        if verified(variant.remote, archive):
            return archive, f"official {variant.remote.filename} (checksum verified, in {directory})"
        log.warning("%s: checksum differs from the published one; downloading it again", archive)
    if download is False or not downloads_allowed():
        raise DataNotFoundError(f"downloads are off (ADVX_OFFLINE) and {directory} lacks "
                                f"{variant.remote.filename}.\n{hint}")
    try:
        got = fetch(variant.remote, directory)
    except ChecksumError:
        raise
    except OSError as e:
        raise DataNotFoundError(f"download failed ({e}).\n{hint}") from e
    return got, f"official {variant.remote.filename} (downloaded, checksum verified, in {directory})"


def read_cifar_names(path: str | Path, variant: Variant, n_labels: int = 0) -> list[str]:
    """The class names beside CIFAR data (archive or folder), numbered names when there are none."""
    path = Path(path)
    archive = _Archive(path)
    try:
        names = _names(archive.read(variant.names).decode("utf-8", "replace")) if archive.has(variant.names) else []
    finally:
        archive.close()
    return names or [str(i) for i in range(max(n_labels, 10 if variant is CIFAR10 else 100))]
