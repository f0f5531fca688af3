"""Moved to :mod:`advx.model.remote` (import from ``advx.model``); this re-export goes away."""

from advx.model.remote import HTTPModel, RemoteModelError

__all__ = ["HTTPModel", "RemoteModelError"]
