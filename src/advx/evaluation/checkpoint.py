"""Per-batch checkpoints of an evaluation run, written atomically.

A run directory holds ``config.json`` (what is being evaluated) and one
``batches/batch_NNNNNN.safetensors`` per finished batch: the per-sample results
as tensors and the batch's check evidence as JSON in the file's metadata. Every
file is written to a temporary name in the same directory, flushed to disk and
then renamed over the final name (``os.replace``), so a run killed at any
moment leaves either the old file or the new one, never half of one. Nothing is
pickled. Resuming loads the finished batches and runs only the others; since
every batch draws its randomness from a seed derived from (seed, batch), the
final numbers are the same as an uninterrupted run's.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor

__all__ = ["RunDirectory", "atomic_write_text", "atomic_save_tensors", "load_tensors"]

log = logging.getLogger(__name__)

_META_KEY = "advx.evaluation"


def _temp_path(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_save_tensors(path: str | os.PathLike, tensors: dict[str, Tensor], meta: dict[str, Any] | None = None) -> None:
    """Save tensors (and JSON-able ``meta``) as safetensors, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta or {}, sort_keys=True)})
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Load a file written by :func:`atomic_save_tensors`: (tensors, meta)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get(_META_KEY, "{}"))
    return load_file(str(path)), meta


def _short(v: Any, limit: int = 80) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k, "<missing>"), b.get(k, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {_short(va)} -> {_short(vb)}")
    return out


class RunDirectory:
    """The directory of one evaluation run: its configuration and finished batches.

    Args:
        path: the directory (created if missing).
        config: JSON-able description of the run; a resumed run must match it.
        resume: continue the run found in ``path``. Without it, a directory that
            already holds finished batches is refused (never silently mixed).
    """

    def __init__(self, path: str | os.PathLike, config: dict[str, Any], resume: bool = False):
        self.path = Path(path)
        self.batches = self.path / "batches"
        self.config = json.loads(json.dumps(config, sort_keys=True))  # normalise (tuples -> lists)
        cfg_file = self.path / "config.json"
        existing = list(self.batches.glob("batch_*.safetensors")) if self.batches.is_dir() else []
        if cfg_file.exists() and resume:
            old = json.loads(cfg_file.read_text(encoding="utf-8"))
            changes = _diff(old, self.config)
            if changes:
                raise ValueError(
                    f"out_dir {str(self.path)!r} holds a run with another configuration ({'; '.join(changes[:5])}); "
                    "resume it with the same settings or choose another out_dir"
                )
        elif existing and not resume:
            raise ValueError(
                f"out_dir {str(self.path)!r} already holds {len(existing)} finished batches of a previous run; "
                "pass resume=True (--resume) to continue it, or choose another out_dir"
            )
        elif resume:
            log.info("nothing to resume in %s: starting a new run", self.path)

    def start(self) -> None:
        """Create the directory and record the configuration (idempotent; safe on every rank)."""
        self.batches.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / "config.json", json.dumps(self.config, indent=2, sort_keys=True))

    def batch_file(self, index: int) -> Path:
        return self.batches / f"batch_{index:06d}.safetensors"

    def load_batch(self, index: int) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
        """A finished batch, or None if it is missing or unreadable."""
        path = self.batch_file(index)
        if not path.exists():
            return None
        try:
            return load_tensors(path)
        except Exception as e:  # noqa: BLE001 -- a damaged file is redone, not fatal
            log.warning("checkpoint %s is unreadable (%s); recomputing that batch", path, e)
            return None

    def save_batch(self, index: int, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        atomic_save_tensors(self.batch_file(index), tensors, meta)

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        atomic_write_text(path, text)
        return path

    def save_tensors(self, name: str, tensors: dict[str, Tensor]) -> Path:
        path = self.path / name
        atomic_save_tensors(path, tensors)
        return path

