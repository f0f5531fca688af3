"""Tensor attacks: medium-agnostic, one file per family."""

from advx.attacks.base import Attack, AttackContext, AttackResult, is_adversarial
from advx.attacks.fgsm import FGM, FGSM
from advx.attacks.pgd import BIM, PGD

__all__ = ["Attack", "AttackContext", "AttackResult", "is_adversarial", "FGSM", "FGM", "PGD", "BIM"]
