"""Parsed-tensor cache: uint8 images and labels in a safetensors file, keyed by where they came from.

The key records the source files' paths, sizes and modification times; a cache
whose key differs is ignored and rewritten. Writes are atomic (temporary file,
then rename), so concurrent processes never read half a file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from advx.data.atomic import atomic_write_bytes
from advx.data.base import data_home

__all__ = ["cache_path", "source_key", "read_cache", "write_cache"]

log = logging.getLogger(__name__)

FORMAT = "advx-data-cache/1"


def cache_path(name: str, split: str) -> Path:
    return data_home() / "cache" / f"{name}-{split}.safetensors"


def source_key(files: Iterable[str | Path], extra: str = "") -> str:
    parts = [FORMAT, extra]
    for f in files:
        st = os.stat(f)
        parts.append(f"{Path(f).resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def read_cache(path: Path, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(images uint8 (N, H, W), labels uint8 (N,)) if ``path`` holds a cache made under ``key``."""
    if not path.exists():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            if (f.metadata() or {}).get("key") != key:
                return None
        arrays = load_file(str(path))
        return arrays["images"], arrays["labels"]
    except (SafetensorError, OSError, KeyError) as e:
        log.warning("ignoring unreadable cache %s: %s", path, e)
        return None


def write_cache(path: Path, key: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Store the arrays; a cache that cannot be written is only logged (loading still works)."""
    try:
        atomic_write_bytes(path, save({"images": np.ascontiguousarray(images), "labels": np.ascontiguousarray(labels)},
                                      metadata={"key": key}))
    except OSError as e:
        log.warning("could not write the data cache %s: %s", path, e)
