"""Moved to :mod:`advx.report.transfer` (this re-export stays for the session; the lead removes it)."""

from advx.report.transfer import transfer_results, write_transfer_report

__all__ = ["transfer_results", "write_transfer_report"]
