"""Tensor attacks: medium-agnostic, one file per family.

White-box, bounded:   FGSM/FGM, PGD/BIM (MI-FGSM via momentum), APGD, APGDT
White-box, min-norm:  CarliniWagnerL2, DeepFool, FAB, FABT, EAD, JSMA (L0)
Score-based:          Square, SimBA, SPSA, NES
Decision-based:       HopSkipJump, Boundary
Transfer:             MIFGSM, DIFGSM, TIFGSM, Ensemble
"""

from advx.attacks.apgd import APGD, APGDT
from advx.attacks.base import Attack, AttackContext, AttackResult, is_adversarial
from advx.attacks.boundary import Boundary
from advx.attacks.cw import CarliniWagnerL2
from advx.attacks.deepfool import DeepFool
from advx.attacks.ead import EAD
from advx.attacks.fab import FAB, FABT
from advx.attacks.fgsm import FGM, FGSM
from advx.attacks.hopskipjump import HopSkipJump
from advx.attacks.jsma import JSMA
from advx.attacks.nes import NES, NESGradient
from advx.attacks.pgd import BIM, PGD
from advx.attacks.simba import SimBA
from advx.attacks.spsa import SPSA, EstimatedPGD, GradientEstimator, SPSAGradient
from advx.attacks.square import Square
from advx.attacks.transfer import DIFGSM, MIFGSM, TIFGSM, Ensemble, transfer_matrix

__all__ = [
    "Attack", "AttackContext", "AttackResult", "is_adversarial",
    "FGSM", "FGM", "PGD", "BIM", "APGD", "APGDT",
    "CarliniWagnerL2", "DeepFool", "FAB", "FABT", "EAD", "JSMA",
    "Square", "SimBA", "SPSA", "NES", "HopSkipJump", "Boundary",
    "MIFGSM", "DIFGSM", "TIFGSM", "Ensemble", "transfer_matrix",
    "GradientEstimator", "SPSAGradient", "NESGradient", "EstimatedPGD",
]
