"""How numbers are written, in the report and in the terminal table alike."""

from __future__ import annotations

import math

__all__ = ["fmt_pct", "fmt_num", "fmt_rate", "fmt_time", "fmt_count", "fmt_eps", "fmt_norm", "fmt_when", "FORMATTERS"]

MISSING = "—"


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt_pct(v: float | None) -> str:
    """0.9134 -> '91.3%'."""
    return MISSING if _missing(v) else f"{100 * v:.1f}%"


def fmt_num(v: float | None) -> str:
    """Three significant digits: 1.2345 -> '1.23', 0.1 -> '0.1'."""
    return MISSING if _missing(v) else f"{v:.3g}"


def fmt_rate(v: float | None) -> str:
    """Per-sample counts: 37.25 -> '37.2'."""
    return MISSING if _missing(v) else f"{v:.1f}"


def fmt_time(v: float | None) -> str:
    return MISSING if _missing(v) else f"{v:.1f} s" if v >= 0.1 else f"{1000 * v:.0f} ms"


def fmt_count(v: int | None) -> str:
    return MISSING if _missing(v) else f"{v:,}"


def fmt_eps(v: float) -> str:
    return f"{v:g}"


NORMS = {"linf": "L∞", "l2": "L2", "l1": "L1", "l0": "L0", "db": "dB"}


def fmt_norm(name: str) -> str:
    """'linf' -> 'L∞'."""
    return NORMS.get(name, name)


def fmt_when(iso: str | None) -> str:
    """'2026-01-02T03:04:05+00:00' -> '2026-01-02 03:04 UTC'."""
    return MISSING if not iso else iso[:16].replace("T", " ") + (" UTC" if iso.endswith("+00:00") else "")


FORMATTERS = {"pct": fmt_pct, "num": fmt_num, "rate": fmt_rate, "time": fmt_time, "count": fmt_count, "eps": fmt_eps,
              "norm": fmt_norm, "when": fmt_when}
