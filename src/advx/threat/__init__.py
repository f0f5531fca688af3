"""Threat models: the sets an adversary may move in, and all of their geometry.

* :mod:`~advx.threat.norms` -- :class:`Threat` and the Lp balls :class:`Linf`, :class:`L2`,
  :class:`L1`, :class:`L0` (projection onto ball ∩ box, distance, steepest-ascent step,
  random start, dual norm, the unbounded radius);
* :mod:`~advx.threat.decibels` -- :class:`Decibels`, the audio threat relative to a clip's
  peak (Carlini & Wagner 2018), with :func:`db_x` and :func:`snr_db`;
* :mod:`~advx.threat.spec` -- :func:`parse_threat`, the spec strings of the command line
  (``str(threat)`` gives one back).
"""

from advx.threat.decibels import Decibels, db_x, snr_db
from advx.threat.norms import L0, L1, L2, BoundLike, Linf, Threat, _flat, per_sample
from advx.threat.spec import parse_threat

__all__ = ["Threat", "Linf", "L2", "L1", "L0", "Decibels", "parse_threat", "per_sample", "db_x", "snr_db",
           "BoundLike", "_flat"]
