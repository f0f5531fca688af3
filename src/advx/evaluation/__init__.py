"""Honest robustness evaluation: the ensemble's per-batch schedule, presets, trust checks, cost, report data.

The Python entry point, ``advx.evaluate(model, (x, y), Linf(8/255))``, lives one
layer up in :mod:`advx.jobs.evaluate` (its batch loop is the job pipeline's) and
returns an :class:`EvaluationReport`: robust accuracy per eps with 95% confidence
intervals, which attack broke which points, the cost, and checks that flag
numbers that cannot be trusted.
"""

from advx.evaluation.checks import CHECKS, BaseCheck, Check
from advx.evaluation.eot import EOT
from advx.evaluation.report import EvaluationReport, ThreatResult
from advx.evaluation.stats import clopper_pearson, wilson
from advx.model.counting import PassCounter

__all__ = ["EvaluationReport", "ThreatResult", "Check", "BaseCheck", "CHECKS", "PassCounter", "EOT", "clopper_pearson", "wilson"]
