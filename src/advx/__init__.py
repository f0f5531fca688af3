"""advx: adversarial examples for images, text and speech, defenses, and honest robustness evaluation."""

from advx.attacks import BIM, FGM, FGSM, PGD, Attack, AttackResult
from advx.model import Normalized
from advx.threat import L0, L1, L2, Linf, Threat

__version__ = "0.1.0"

__all__ = ["Attack", "AttackResult", "FGSM", "FGM", "PGD", "BIM", "Normalized", "Threat", "Linf", "L2", "L1", "L0", "__version__"]
