"""Sharding a job over processes started by ``torchrun``.

``torchrun --nproc-per-node N -m advx evaluate ...`` starts N processes with
RANK / WORLD_SIZE / MASTER_ADDR set. Each joins a ``torch.distributed`` process
group (gloo on CPU, NCCL when the model is on a GPU), runs the batches
``b`` with ``b % world == rank``, and the per-batch records are gathered on
every rank. The records are the same tensors a single process computes for
that batch (every batch's randomness comes from (seed, batch)), so the merged
report equals the single-process one exactly. Records travel as safetensors
bytes, never pickled objects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

__all__ = ["world", "process_group", "shard", "gather_records"]

log = logging.getLogger(__name__)

Record = tuple[dict[str, Tensor], dict[str, Any]]


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() else None


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside a process group."""
    dist = _dist()
    if dist is not None and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[tuple[int, int]]:
    """Join the process group torchrun describes (if any, and not joined yet); yield (rank, world)."""
    dist = _dist()
    created = False
    if dist is not None and _launched() and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        created = True
        log.info("joined %s process group: rank %d of %d", backend, dist.get_rank(), dist.get_world_size())
    try:
        yield world()
    finally:
        if created:
            dist.destroy_process_group()


def shard(num_batches: int, rank: int, size: int) -> list[int]:
    """The batch indices this rank evaluates (round robin)."""
    return [b for b in range(num_batches) if b % size == rank]


def _encode(index: int, record: Record) -> bytes:
    tensors, meta = record
    return st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                   metadata={"batch": str(index), "meta": json.dumps(meta, sort_keys=True)})


def _decode(blob: bytes) -> tuple[int, Record]:
    tensors = st_load(blob)
    # metadata is in the header: first 8 bytes little-endian header size, then JSON
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + size].decode("utf-8"))
    meta = header.get("__metadata__", {})
    return int(meta["batch"]), (tensors, json.loads(meta["meta"]))


def gather_records(local: dict[int, Record], device: torch.device) -> dict[int, Record]:
    """All ranks' records, on every rank (identity outside a process group)."""
    rank, size = world()
    if size == 1:
        return dict(local)
    dist = _dist()
    comm_device = device if device.type == "cuda" else torch.device("cpu")
    blobs = [_encode(i, r) for i, r in sorted(local.items())]
    lengths = torch.tensor([len(b) for b in blobs], dtype=torch.long, device=comm_device)
    counts = [torch.zeros(1, dtype=torch.long, device=comm_device) for _ in range(size)]
    dist.all_gather(counts, torch.tensor([len(blobs)], dtype=torch.long, device=comm_device))
    most = max(int(c) for c in counts)
    padded_len = torch.zeros(most, dtype=torch.long, device=comm_device)
    padded_len[: len(blobs)] = lengths
    all_lens = [torch.zeros(most, dtype=torch.long, device=comm_device) for _ in range(size)]
    dist.all_gather(all_lens, padded_len)
    longest = max(int(t.sum()) for t in all_lens)
    payload = torch.zeros(max(longest, 1), dtype=torch.uint8, device=comm_device)
    joined = b"".join(blobs)
    if joined:
        payload[: len(joined)] = torch.frombuffer(bytearray(joined), dtype=torch.uint8).to(comm_device)
    gathered = [torch.zeros_like(payload) for _ in range(size)]
    dist.all_gather(gathered, payload)
    out: dict[int, Record] = {}
    for r in range(size):
        data = gathered[r].cpu().numpy().tobytes()
        offset = 0
        for k in range(int(counts[r])):
            n = int(all_lens[r][k])
            index, record = _decode(data[offset:offset + n])
            out[index] = record
            offset += n
    return out
