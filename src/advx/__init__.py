"""advx: adversarial examples for images, text and speech, defenses, and honest robustness evaluation.

    >>> from advx import PGD, Linf
    >>> result = PGD(Linf(0.1), steps=40)(model, x, y)
    >>> result.robust_accuracy()
"""

from advx import data, zoo
from advx._version import __version__
from advx.attacks import (
    APGD,
    APGDT,
    BIM,
    DIFGSM,
    EAD,
    FAB,
    FABT,
    FGM,
    FGSM,
    JSMA,
    MIFGSM,
    NES,
    PGD,
    SPSA,
    TIFGSM,
    Attack,
    AttackResult,
    Boundary,
    CarliniWagnerL2,
    DeepFool,
    HopSkipJump,
    SimBA,
    Square,
)
from advx.evaluation import EvaluationReport
from advx.jobs.evaluate import evaluate
from advx.model import LabelOnly, Normalized, QueryBudgetExceeded, ScoresOnly, load_model
from advx.threat import L0, L1, L2, Decibels, Linf, Threat, parse_threat

__all__ = [
    "Attack", "AttackResult",
    "FGSM", "FGM", "PGD", "BIM", "APGD", "APGDT", "CarliniWagnerL2", "DeepFool", "FAB", "FABT", "EAD", "JSMA",
    "Square", "SimBA", "SPSA", "NES", "HopSkipJump", "Boundary", "MIFGSM", "DIFGSM", "TIFGSM",
    "Threat", "Linf", "L2", "L1", "L0", "Decibels", "parse_threat", "Normalized",
    "ScoresOnly", "LabelOnly", "QueryBudgetExceeded",
    "evaluate", "EvaluationReport", "load_model", "data", "zoo", "__version__",
]
