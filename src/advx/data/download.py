"""Checksummed downloads into the cache: a file is kept only if its SHA-256 is the published one."""

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

__all__ = ["Remote", "fetch", "sha256sum", "downloads_allowed"]

log = logging.getLogger(__name__)

Opener = Callable[[str, float], IO[bytes]]


@dataclass(frozen=True)
class Remote:
    """One published file: its name, mirrors (tried in order) and SHA-256."""

    filename: str
    urls: tuple[str, ...]
    sha256: str


def sha256sum(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
        if sha256sum(dest) == remote.sha256:
            return dest
        log.warning("%s: cached file has the wrong SHA-256; downloading it again", dest)
        dest.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    opener = opener or _default_opener
    error: OSError = OSError(f"no mirror listed for {remote.filename}")
    for url in remote.urls:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{remote.filename}.", suffix=".part")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, opener(url, timeout) as response:
                for block in iter(lambda r=response: r.read(1 << 20), b""):
                    h.update(block)
                    out.write(block)
            if h.hexdigest() != remote.sha256:
                raise ChecksumError(
                    f"{url}: SHA-256 {h.hexdigest()} differs from the published {remote.sha256}; file discarded"
                )
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
