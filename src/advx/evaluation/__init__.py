"""Honest robustness evaluation: worst case over an attack ensemble, with trust checks.

``evaluate(model, (x, y), Linf(8/255))`` returns an :class:`EvaluationReport`:
robust accuracy per eps with 95% confidence intervals, which attack broke which
points, the cost, and checks that flag numbers that cannot be trusted. Runs
checkpoint per batch (``out_dir``, ``resume``) and shard over ``torchrun``.
"""

from advx.evaluation.checks import CHECKS, BaseCheck, Check
from advx.evaluation.cost import PassCounter
from advx.evaluation.ensemble import evaluate
from advx.evaluation.eot import EOT
from advx.evaluation.report import EvaluationReport, ThreatResult
from advx.evaluation.stats import clopper_pearson, wilson

__all__ = ["evaluate", "EvaluationReport", "ThreatResult", "Check", "BaseCheck", "CHECKS", "PassCounter", "EOT", "clopper_pearson", "wilson"]
