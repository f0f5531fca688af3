"""Moved to :mod:`advx.jobs.targets`; this shim keeps old imports working this session."""

from advx.jobs.targets import NOT_ATTACKED, Targeting

__all__ = ["Targeting", "NOT_ATTACKED"]
