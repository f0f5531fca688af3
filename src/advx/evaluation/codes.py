"""The codes of an evaluation record and the key that names a threat in it.

``broken_by[k, i]`` holds, for threat ``k`` and point ``i``, the index of the
ensemble member that broke the point (0..A-1, the convergence probe A), or
:data:`ROBUST` / :data:`MISCLASSIFIED`. Shared by the schedule, the checks and
the report, so none of them imports another for it.
"""

from __future__ import annotations

from advx.threat import Threat

__all__ = ["ROBUST", "MISCLASSIFIED", "threat_key"]

ROBUST, MISCLASSIFIED = -1, -2  #: codes in ``broken_by``; attacks are 0..A-1, the convergence probe A


def threat_key(threat: Threat) -> str:
    """``"linf:0.1"``: the threat's norm and radius, as results and checkpoints name it."""
    return f"{threat.norm_name or type(threat).__name__.lower()}:{threat.eps:g}"
