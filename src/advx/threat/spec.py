"""Threat spec strings: ``parse_threat("linf:8/255,0.1")`` and back (``str(threat)``)."""

from __future__ import annotations

from advx.threat.decibels import Decibels
from advx.threat.norms import L0, L1, L2, Linf, Threat

__all__ = ["parse_threat"]

_THREATS = {"linf": Linf, "l2": L2, "l1": L1, "l0": L0}


def parse_threat(spec: str, bounds=None) -> list[Threat]:
    """Parse ``"linf:0.1,0.2"`` or ``"db:-30"`` into threats; used by the command line.

    ``bounds=None`` takes each threat's own default: (0, 1) for the norms, (-1, 1)
    for decibel threats on waveforms.
    """
    name, _, values = spec.partition(":")
    name = name.strip().lower()
    if name not in _THREATS and name not in ("db", "decibels"):
        raise ValueError(f"threat {spec!r}: unknown norm {name!r}; use one of linf, l2, l1, l0, db")
    if not values:
        raise ValueError(f"threat {spec!r}: give the radius after a colon, e.g. linf:0.1")
    try:
        eps = [float(v) for v in values.split(",")]
    except ValueError:
        raise ValueError(f"threat {spec!r}: radii must be numbers, e.g. linf:0.1,0.2") from None
    if name in ("db", "decibels"):
        return [Decibels(e) if bounds is None else Decibels(e, bounds=bounds) for e in eps]
    bounds = (0.0, 1.0) if bounds is None else bounds
    cls = _THREATS[name]
    return [cls(int(e), bounds=bounds) if cls is L0 else cls(e, bounds=bounds) for e in eps]
