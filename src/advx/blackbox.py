"""Moved to :mod:`advx.model.blackbox` (import from ``advx.model``); this re-export goes away."""

from advx.model.blackbox import LabelOnly, QueryBudgetExceeded, ScoresOnly

__all__ = ["QueryBudgetExceeded", "ScoresOnly", "LabelOnly"]
