"""How numbers are written, in the report and in the terminal table alike.

Every formatter takes the raw value of results.json and returns the text a
person reads; the report's tests format the raw value again and compare it with
the page, so a formatter is the one place a number's shape is decided.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["fmt_pct", "fmt_num", "fmt_rate", "fmt_time", "fmt_count", "fmt_eps", "fmt_norm", "fmt_when", "fmt_ci",
           "fmt_db", "fmt_pct_points", "fmt_text", "fmt_value", "fmt_bool", "label", "FORMATTERS", "MISSING"]

MISSING = "—"


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and v.lower() == "nan")


def fmt_pct(v: float | None) -> str:
    """0.9134 -> '91.3%'; a share that is not exactly 0 or 1 never shows as 0.0% or 100.0%."""
    if _missing(v):
        return MISSING
    p = 100 * float(v)
    if 0 < p < 0.05:
        return "<0.1%"
    if 99.95 <= p < 100:
        return ">99.9%"
    return f"{p:.1f}%"


def fmt_num(v: float | None) -> str:
    """Three significant digits: 1.2345 -> '1.23', 0.1 -> '0.1', 0.0019 -> '0.0019'; 1216.9 -> '1,217' (no exponent)."""
    if _missing(v):
        return MISSING
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def fmt_rate(v: float | None) -> str:
    """Per-sample counts: 37.25 -> '37.2' (3 significant digits below 10: 0.25 -> '0.25')."""
    if _missing(v):
        return MISSING
    return f"{v:.1f}" if abs(v) >= 10 or v == int(v) else f"{v:.3g}"


def fmt_time(v: float | None) -> str:
    if _missing(v):
        return MISSING
    if v >= 120:
        m, s = divmod(round(v), 60)
        return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"
    return f"{v:.1f} s" if v >= 0.1 else f"{1000 * v:.0f} ms"


def fmt_count(v: int | None) -> str:
    return MISSING if _missing(v) else f"{int(v):,}"


def fmt_eps(v: float) -> str:
    """A radius as it was most likely written: 0.1 -> '0.1', 8/255 -> '8/255' (not '0.0313725')."""
    if _missing(v):
        return MISSING
    text = f"{v:g}"
    digits = text.lstrip("-").replace(".", "").lstrip("0").split("e")[0]
    if len(digits) > 4:
        k = round(v * 255)
        if k and abs(v * 255 - k) <= 1e-6 * abs(k):
            return f"{k}/255"
    return text


def fmt_db(v: float | None) -> str:
    """Decibels: -31.234 -> '-31.2 dB'."""
    return MISSING if _missing(v) else f"{v:.1f} dB"


def fmt_ci(v) -> str:
    """A 95% interval of shares: [0.25, 0.67] -> '25.0 – 67.0%'."""
    if v is None or len(v) != 2 or any(_missing(e) for e in v):
        return MISSING
    return f"{100 * v[0]:.1f} – {100 * v[1]:.1f}%"


def fmt_pct_points(v: float | None) -> str:
    """A value that already is a percentage: 12.34 -> '12.3%'."""
    return MISSING if _missing(v) else f"{v:.1f}%"


def fmt_bool(v) -> str:
    return MISSING if v is None else "yes" if v else "no"


def fmt_text(v) -> str:
    return MISSING if v is None else str(v)


NORMS = {"linf": "L∞", "l2": "L2", "l1": "L1", "l0": "L0", "db": "dB"}


def fmt_norm(name: str) -> str:
    """'linf' -> 'L∞'."""
    return NORMS.get(name, name)


def fmt_when(iso: str | None) -> str:
    """'2026-01-02T03:04:05+00:00' -> '2026-01-02 03:04 UTC'."""
    return MISSING if not iso else iso[:16].replace("T", " ") + (" UTC" if iso.endswith("+00:00") else "")


def fmt_value(v: Any) -> str:
    """Any scalar from results.json, in words: shares are not guessed (use fmt_pct), floats get 3 digits."""
    if isinstance(v, bool):
        return fmt_bool(v)
    if isinstance(v, int):
        return fmt_count(v)
    if isinstance(v, float):
        return fmt_num(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt_value(e) for e in v) if v else MISSING
    return fmt_text(v)


def label(key: str) -> str:
    """A snake_case key in words: 'success_rate' -> 'success rate'."""
    return str(key).replace("_", " ")


FORMATTERS = {"pct": fmt_pct, "num": fmt_num, "rate": fmt_rate, "time": fmt_time, "count": fmt_count, "eps": fmt_eps,
              "norm": fmt_norm, "when": fmt_when, "ci": fmt_ci, "db": fmt_db, "text": fmt_text, "value": fmt_value,
              "bool": fmt_bool, "pctpoints": fmt_pct_points}
