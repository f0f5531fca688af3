"""Atomic files: written to a temporary name, fsynced, renamed over the final name.

A process killed at any moment leaves the old file or the new one, never half of
one. Nothing is pickled: tensors go through safetensors, with JSON ``meta`` in the
header. The run folder of every command (:class:`advx.jobs.run_folder.RunFolder`:
lock, fingerprint binding, checksummed batch checkpoints), the training checkpoints
(:func:`advx.defenses.loop.save_checkpoint`) and the data caches are written with them;
they sit in the lowest layer so that every layer can.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_save_tensors", "load_tensors"]

_META_KEY = "advx.evaluation"  # the header key of atomic_save_tensors' JSON meta


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what open() would give a new file (mkstemp alone gives 0600)


def _temp_path(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _MODE)
    return Path(tmp)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + fsync + os.replace)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_tensors(path: str | os.PathLike, tensors: dict[str, Tensor], meta: dict[str, Any] | None = None,
                        metadata: dict[str, str] | None = None) -> None:
    """Save tensors (and JSON-able ``meta``; raw string ``metadata``) as safetensors, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        header = dict(metadata or {})
        if meta is not None:  # load_tensors reads a missing key as {}
            header[_META_KEY] = json.dumps(meta, sort_keys=True)
        save_file(tensors, str(tmp), metadata=header)
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _header(path: str | os.PathLike) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Load a file written by :func:`atomic_save_tensors`: (tensors, meta)."""
    meta = json.loads(_header(path).get(_META_KEY, "{}"))
    return load_file(str(path)), meta
