"""Text attacks: discrete character and word edits, each in its own file."""

from advx.text.attacks.base import AttackState, BudgetExhausted, Edit, TextAttack, TextAttackResult, summarize
from advx.text.attacks.deepwordbug import DeepWordBug
from advx.text.attacks.gcg import GCG
from advx.text.attacks.hotflip import HotFlip
from advx.text.attacks.pwws import PWWS
from advx.text.attacks.textfooler import TextFooler

__all__ = ["TextAttack", "TextAttackResult", "AttackState", "BudgetExhausted", "Edit", "summarize",
           "DeepWordBug", "GCG", "HotFlip", "PWWS", "TextFooler"]
