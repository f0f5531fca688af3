"""Moved to :mod:`advx.jobs.run_folder` (one run folder for every command); re-exported for old imports.

``RunDirectory`` became :class:`advx.jobs.run_folder.RunFolder` (locked, bound to the run's
fingerprint, checksummed checkpoints).
"""

from advx.jobs.run_folder import atomic_save_tensors, atomic_write_text, load_tensors

__all__ = ["atomic_write_text", "atomic_save_tensors", "load_tensors"]
