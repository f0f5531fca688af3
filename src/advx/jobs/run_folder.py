"""The run folder: one per run, locked while written, bound to its fingerprint, checksummed.

Layout (docs/results-schema.md)::

    out/.advx.lock                  while a run writes: {pid, host, command, started}
    out/fingerprint.json            the run's fingerprint (config, model, data, version hashes + config)
    out/batches/batch_NNNNNN.safetensors   one finished batch: tensors + JSON meta; carries the
                                    fingerprint and the sha256 of its payload
    out/results.json                every number (one versioned schema)
    out/adversarial.safetensors     x, y, target (targeted), per row x_adv ...
    out/report.html                 the page (advx.report)

Rules (each backed by tests/test_jobs_run_folder.py):

* a second run into a locked folder is refused (exit 2) naming the lock's owner; a lock
  whose process is dead (same host) is taken over with a warning;
* a non-empty folder needs ``resume`` (continue the run in it) or ``overwrite`` (replace it);
* ``resume`` refuses a folder whose fingerprint differs, naming what differs (configuration,
  model weights, data, advx version); each checkpoint carries the fingerprint too, so deleting
  ``fingerprint.json`` does not let another run reuse its batches;
* a checkpoint whose checksum fails (or that cannot be read) is redone, with a warning.

Every file is written to a temporary name in the same folder, fsynced, then renamed over
the final name (``os.replace``): a run killed at any moment leaves the old file or the new
one, never half of one. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from advx.data.atomic import (
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_text,
    load_tensors,
)
from advx.jobs.config import jsonable
from advx.jobs.fingerprint import Fingerprint

__all__ = ["RunFolder", "RunFolderError", "atomic_write_text", "atomic_write_bytes", "atomic_save_tensors",
           "load_tensors", "LOCK_NAME", "payload_sha256"]

log = logging.getLogger(__name__)

_JOB_KEY = "advx.job"  # a batch checkpoint's header: batch, fingerprint, sha256, meta
LOCK_NAME = ".advx.lock"
#: what --overwrite removes (only advx's own outputs; anything else in the folder is left alone)
ARTIFACTS = ("batches", "chunks", "wav", "fingerprint.json", "config.json", "certify-config.json", "results.json",
             "report.html", "report.json", "transfer.html", "summary.json", "adversarial.safetensors",
             "adversarials.safetensors")


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (the CLI exits 2 with this message)."""


def _header(path: str | os.PathLike) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def payload_sha256(index: int, digest: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> str:
    """sha256 of a batch's payload: its index, the run's fingerprint digest, every tensor and the meta."""
    h = hashlib.sha256(f"{index}|{digest}|".encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------- locks
def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_lock(path: Path) -> dict[str, Any]:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(owner: dict[str, Any]) -> str:
    cmd = owner.get("command")
    return (f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}"
            + (f" ({cmd})" if cmd else "") + (f", started {owner['started']}" if owner.get("started") else ""))


# ------------------------------------------------------------------------ the folder
class RunFolder:
    """The folder of one run: lock, fingerprint, batch checkpoints and the outputs.

    Args:
        path: the folder (created if missing).
        fp: the run's :class:`~advx.jobs.fingerprint.Fingerprint`.
        resume: continue the run found in ``path`` (same fingerprint) instead of refusing a non-empty folder.
        overwrite: replace what an earlier run left in ``path`` (advx's own files only).
        command: the command line, recorded in the lock (who holds it).
        option: how the folder was named to the user, for messages (``--out``).
    """

    def __init__(self, path: str | os.PathLike, fp: Fingerprint, *, resume: bool = False, overwrite: bool = False,
                 command: str | None = None, option: str = "--out"):
        if resume and overwrite:
            raise RunFolderError(f"{option}: give --resume (continue the run) or --overwrite (replace it), not both")
        self.path = Path(path)
        self.fp = fp
        self.resume, self.overwrite = bool(resume), bool(overwrite)
        self.command = command
        self.option = option
        self.batches = self.path / "batches"
        self.lock_path = self.path / LOCK_NAME
        self._locked = False
        self._stale: dict[str, Any] | None = None

    # ------------------------------------------------------------------ opening
    def check(self) -> None:
        """Refuse what must be refused, reading only (safe on every rank before anything is written)."""
        where = f"{self.option} {str(self.path)!r}"
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{where} is a file, not a folder; choose a folder for the run")
        blocking = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise RunFolderError(f"{where} cannot be created: {str(blocking)!r} is a file, not a folder")
        if not self.path.exists():
            return
        if self.lock_path.exists():
            owner = _read_lock(self.lock_path)
            host, pid = owner.get("host"), owner.get("pid")
            if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
                self._stale = owner
            else:
                raise RunFolderError(
                    f"{where} is being written by another run: {_describe(owner)}; wait for it to finish or choose "
                    f"another {self.option} (if that process is gone, delete {self.lock_path})")
        contents = sorted(p.name for p in self.path.iterdir() if p.name != LOCK_NAME)
        if not contents:
            return
        if not (self.resume or self.overwrite):
            shown = ", ".join(contents[:4]) + (", ..." if len(contents) > 4 else "")
            raise RunFolderError(f"{where} is not empty (holds {shown}); pass --resume to continue the run in it, "
                                 f"--overwrite to replace it, or choose another {self.option}")
        if self.resume:
            fp_file = self.path / "fingerprint.json"
            if fp_file.exists():
                try:
                    old = Fingerprint.from_dict(json.loads(fp_file.read_text(encoding="utf-8")))
                except ValueError as e:
                    raise RunFolderError(f"{where}: fingerprint.json is damaged ({e}); use --overwrite") from None
                self._refuse_if_different(old, "the run in it")

    def _refuse_if_different(self, old: Fingerprint, what: str) -> None:
        changes = self.fp.differences(old)
        if changes:
            raise RunFolderError(
                f"--resume: {self.option} {str(self.path)!r} holds another run ({what} differs in: "
                f"{'; '.join(changes)}); resume with the same settings, use --overwrite to replace it, or choose "
                f"another {self.option}")

    def open(self, rank: int = 0, size: int = 1) -> RunFolder:
        """:meth:`check` on every rank, then (rank 0) take the lock, clear for --overwrite, record the fingerprint."""
        self.check()
        _barrier(size)
        if rank == 0:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock()
            if self.overwrite:
                for name in ARTIFACTS:
                    p = self.path / name
                    if p.is_dir():
                        shutil.rmtree(p)
                    elif p.exists():
                        p.unlink()
            self.batches.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path / "fingerprint.json", json.dumps(self.fp.to_dict(), indent=2, sort_keys=True))
        _barrier(size)
        return self

    def _lock(self) -> None:
        if self._stale is not None:
            log.warning("%s %s: taking over the stale lock of %s (that process is gone)", self.option, self.path,
                        _describe(self._stale))
            self.lock_path.unlink(missing_ok=True)
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                 "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise RunFolderError(f"{self.option} {str(self.path)!r} is being written by another run: "
                                 f"{_describe(_read_lock(self.lock_path))}; wait for it or choose another "
                                 f"{self.option}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(owner, f)
        self._locked = True

    def close(self) -> None:
        """Release the lock (if this process holds it)."""
        if self._locked:
            if _read_lock(self.lock_path).get("pid") == os.getpid():
                self.lock_path.unlink(missing_ok=True)
            self._locked = False

    def __enter__(self) -> RunFolder:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------- checkpoints
    def batch_file(self, index: int) -> Path:
        return self.batches / f"batch_{index:06d}.safetensors"

    def finished(self) -> list[int]:
        """Indices of the batch files present (not yet verified)."""
        if not self.batches.is_dir():
            return []
        out = []
        for p in self.batches.glob("batch_*.safetensors"):
            try:
                out.append(int(p.stem.split("_")[1]))
            except (IndexError, ValueError):
                continue
        return sorted(out)

    def save_batch(self, index: int, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Checkpoint batch ``index``: tensors + meta, the fingerprint and the payload's sha256."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        meta = jsonable(meta)
        header = {"batch": index, "fingerprint": self.fp.to_dict(),
                  "sha256": payload_sha256(index, self.fp.digest, tensors, meta), "meta": meta}
        atomic_save_tensors(self.batch_file(index), tensors, metadata={_JOB_KEY: json.dumps(header, sort_keys=True)})

    def load_batch(self, index: int) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
        """A finished batch of this run, or None (missing, unreadable or failing its checksum: redo it).

        Raises :class:`RunFolderError` when the checkpoint belongs to another run (its fingerprint differs).
        """
        path = self.batch_file(index)
        if not path.exists():
            return None
        try:
            header = json.loads(_header(path)[_JOB_KEY])
            tensors = load_file(str(path))
            stored = Fingerprint.from_dict(header["fingerprint"])
            meta, checksum = header["meta"], header["sha256"]
        except Exception as e:  # noqa: BLE001 -- a damaged or foreign file is redone, not trusted
            log.warning("checkpoint %s is unreadable or has no fingerprint (%s); redoing batch %d", path, e, index)
            return None
        if stored.digest != self.fp.digest:
            self._refuse_if_different(stored, f"checkpoint {path.name}")
        if header.get("batch") != index or payload_sha256(index, self.fp.digest, tensors, meta) != checksum:
            log.warning("checkpoint %s fails its sha256 checksum (altered or damaged); redoing batch %d", path, index)
            return None
        return tensors, meta

    # ------------------------------------------------------------------ outputs
    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        atomic_write_text(path, text)
        return path

    def write_bytes(self, name: str, data: bytes) -> Path:
        path = self.path / name
        if path.resolve().parent != self.path.resolve() and self.path.resolve() not in path.resolve().parents:
            raise ValueError(f"output file {name!r} would leave the run folder")
        atomic_write_bytes(path, data)
        return path

    def save_tensors(self, name: str, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> Path:
        path = self.path / name
        atomic_save_tensors(path, tensors, metadata=metadata)
        return path


def _barrier(size: int) -> None:
    if size > 1:
        import torch.distributed as dist  # noqa: PLC0415

        dist.barrier()
