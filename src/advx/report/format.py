"""How numbers are written, in the report and in the terminal table alike."""

from __future__ import annotations

import math

__all__ = ["fmt_pct", "fmt_num", "fmt_rate", "fmt_time", "fmt_count", "fmt_eps", "FORMATTERS"]

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


FORMATTERS = {"pct": fmt_pct, "num": fmt_num, "rate": fmt_rate, "time": fmt_time, "count": fmt_count, "eps": fmt_eps}
