"""Moved: the decibel threat lives in :mod:`advx.threat.decibels` (import it from ``advx.threat``).

This re-export keeps old imports working for now; it goes away.
"""

from advx.threat.decibels import Decibels, db_x, snr_db

__all__ = ["Decibels", "db_x", "snr_db"]
