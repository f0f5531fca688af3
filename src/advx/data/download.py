"""Checksummed downloads into the cache: a file is kept only if its SHA-256 (and/or MD5, where the
publisher gives only that) is the published one."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from advx.data.base import ChecksumError

__all__ = ["Remote", "fetch", "sha256sum", "verified", "downloads_allowed"]

log = logging.getLogger(__name__)

Opener = Callable[[str, float], IO[bytes]]


@dataclass(frozen=True)
class Remote:
    """One published file: its name, mirrors (tried in order) and SHA-256 ("" when unpublished), and
    the MD5 where the publisher gives one; every checksum given must match."""

    filename: str
    urls: tuple[str, ...]
    sha256: str
    md5: str | None = None

    def __post_init__(self) -> None:
        if not self.sha256 and not self.md5:
            raise ValueError(f"{self.filename}: a Remote needs a published sha256 or md5")

    def matches(self, sha256: str | None, md5: str | None) -> bool:
        return (not self.sha256 or sha256 == self.sha256) and (not self.md5 or md5 == self.md5)


def sha256sum(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sums(path: str | Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def verified(remote: Remote, path: str | Path) -> bool:
    """``path`` exists and has every published checksum of ``remote``."""
    return Path(path).is_file() and remote.matches(*_sums(path))


def downloads_allowed() -> bool:
    """False when ``ADVX_OFFLINE`` is set to 1/true/yes."""
    return os.environ.get("ADVX_OFFLINE", "").strip().lower() not in {"1", "true", "yes"}


def _default_opener(url: str, timeout: float) -> IO[bytes]:
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 -- https/http mirrors only


def fetch(remote: Remote, directory: str | Path, opener: Opener | None = None, timeout: float = 30.0) -> Path:
    """``directory/remote.filename``, downloaded from the first mirror that answers if not already there.

    A cached file is re-verified. A download is written to a temporary file,
    hashed, and renamed into place only if the SHA-256 matches; otherwise it is
    deleted and :class:`ChecksumError` is raised. If no mirror answers, the
    last network error (an ``OSError``) is raised.
    """
    directory = Path(directory)
    dest = directory / remote.filename
    if dest.exists():
        if verified(remote, dest):
            return dest
        log.warning("%s: cached file has the wrong checksum; downloading it again", dest)
        dest.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    opener = opener or _default_opener
    error: OSError = OSError(f"no mirror listed for {remote.filename}")
    for url in remote.urls:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{remote.filename}.", suffix=".part")
        try:
            h, m = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
            with os.fdopen(fd, "wb") as out, opener(url, timeout) as response:
                for block in iter(lambda r=response: r.read(1 << 20), b""):
                    h.update(block)
                    m.update(block)
                    out.write(block)
            if not remote.matches(h.hexdigest(), m.hexdigest()):
                published = remote.sha256 and f"SHA-256 {remote.sha256}" or f"MD5 {remote.md5}"
                got = remote.sha256 and f"SHA-256 {h.hexdigest()}" or f"MD5 {m.hexdigest()}"
                raise ChecksumError(f"{url}: {got} differs from the published {published}; file discarded")
            os.replace(tmp, dest)
            log.info("downloaded %s", url)
            return dest
        except ChecksumError:
            raise
        except OSError as e:  # network errors (URLError is an OSError); try the next mirror
            log.debug("could not download %s: %s", url, e)
            error = e
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise error


def fetch_all(remotes: Sequence[Remote], directory: str | Path, opener: Opener | None = None) -> list[Path]:
    return [fetch(r, directory, opener) for r in remotes]
