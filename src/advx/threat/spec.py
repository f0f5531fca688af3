"""Threat spec strings: ``parse_threat("linf:8/255,0.1")`` and back (``str(threat)``).

Grammar: ``NORM:ITEM[,ITEM...]``. NORM is ``linf``, ``l2``, ``l1``, ``l0`` or ``db``.
An ITEM is a radius -- a number or a fraction (``8/255``; ``l0`` takes whole
numbers of components, ``db`` decibels such as ``-30``) -- or an option
``key=value``: ``bounds=LO:HI`` (numbers, or per-channel lists ``[a,b,c]``) and,
for ``l1``, ``sparsity=F``. Every radius gets the options. ``str(t)`` writes
this form, with the options that differ from their defaults, and
``parse_threat(str(t)) == [t]``.
"""

from __future__ import annotations

import math

from advx.threat.decibels import Decibels
from advx.threat.norms import L0, L1, L2, Linf, Threat

__all__ = ["parse_threat", "parse_number"]

_THREATS: dict[str, type[Threat]] = {"linf": Linf, "l2": L2, "l1": L1, "l0": L0, "db": Decibels, "decibels": Decibels}
_OPTIONS = {"bounds", "sparsity"}


def parse_number(text: str, what: str = "value") -> float:
    """A finite number or fraction ``a/b`` from text ("0.1", "8/255", "-30")."""
    text = text.strip()
    try:
        if "/" in text:
            num, _, den = text.partition("/")
            d = float(den)
            if d == 0:
                raise ValueError
            value = float(num) / d
        else:
            value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number or a fraction such as 8/255") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} {text!r} must be finite")
    return value


def _split(values: str) -> list[str]:
    """Split on commas outside brackets."""
    items, depth, cur = [], 0, ""
    for ch in values:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    return [i.strip() for i in items]


def _bounds(text: str, spec: str):
    lo, sep, hi = text.partition(":")
    if not sep:
        raise ValueError(f"threat {spec!r}: bounds must be LO:HI, e.g. bounds=-1:1, got {text!r}")

    def side(t: str):
        t = t.strip()
        if t.startswith("[") and t.endswith("]"):
            return [parse_number(v, "bound") for v in t[1:-1].split(",")]
        return parse_number(t, "bound")

    return side(lo), side(hi)


def parse_threat(spec: str, bounds=None) -> list[Threat]:
    """Parse ``"linf:0.1,0.2"``, ``"linf:8/255"``, ``"l2:0.5,bounds=-1:1"`` or ``"db:-30"`` into threats.

    ``bounds=None`` takes each threat's own default: (0, 1) for the norms, (-1, 1)
    for decibel threats on waveforms; a ``bounds=`` item in the spec wins over the argument.
    """
    if not isinstance(spec, str):
        raise TypeError(f"threat spec must be a string like 'linf:0.1', got {type(spec).__name__}")
    name, _, values = spec.partition(":")
    name = name.strip().lower()
    if name not in _THREATS:
        raise ValueError(f"threat {spec!r}: unknown norm {name!r}; use one of linf, l2, l1, l0, db")
    cls = _THREATS[name]
    if not values.strip():
        raise ValueError(f"threat {spec!r}: give the radius after a colon, e.g. linf:0.1")
    radii: list[float] = []
    options: dict[str, str] = {}
    for item in _split(values):
        if "=" in item:
            key, _, value = item.partition("=")
            key = key.strip().lower()
            if key not in _OPTIONS or (key == "sparsity" and cls is not L1):
                allowed = "bounds, sparsity" if cls is L1 else "bounds"
                raise ValueError(f"threat {spec!r}: unknown option {key!r}; {name} takes {allowed}")
            options[key] = value.strip()
        elif item:
            radii.append(parse_number(item, f"threat {spec!r}: radius"))
        else:
            raise ValueError(f"threat {spec!r}: an empty radius; write e.g. linf:0.1,0.2")
    if not radii:
        raise ValueError(f"threat {spec!r}: give the radius after a colon, e.g. {name}:0.1")
    kwargs: dict = {}
    if "bounds" in options:
        kwargs["bounds"] = _bounds(options["bounds"], spec)
    elif bounds is not None:
        kwargs["bounds"] = bounds
    if "sparsity" in options:
        kwargs["sparsity"] = parse_number(options["sparsity"], f"threat {spec!r}: sparsity")
    out = []
    for r in radii:
        if cls is L0:
            if not float(r).is_integer():
                raise ValueError(f"threat {spec!r}: l0 counts changed components; give a whole number "
                                 f"such as l0:{max(1, math.floor(r))}, got {r:g}")
            r = int(r)
        out.append(cls(r, **kwargs))
    return out
