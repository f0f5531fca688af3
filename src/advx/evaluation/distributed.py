"""Moved to :mod:`advx.jobs.distributed` (every job shards the same way); re-exported for old imports."""

from advx.jobs.distributed import gather_records, process_group, shard, world

__all__ = ["world", "process_group", "shard", "gather_records"]
