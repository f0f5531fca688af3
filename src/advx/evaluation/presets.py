"""The attack ensembles an evaluation runs, by name.

``"standard"`` follows the standard version of AutoAttack (Croce & Hein, ICML
2020, https://arxiv.org/abs/2003.01690) with its budgets: APGD-CE (100
iterations), APGD-T (targeted DLR, 100 iterations, 9 target classes or C - 1),
FAB-T (minimum norm, 9 targets) when ``advx.attacks.fab`` exists, and Square
(5 000 queries, Linf and L2 only). ``"fast"`` is APGD-CE + APGD-T with 25
iterations each. A custom list may mix names (see :data:`NAMES`), configured
:class:`~advx.attacks.base.Attack` objects (re-aimed at each threat) and
callables ``threat -> Attack``.
"""

from __future__ import annotations

import copy
import importlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

from advx.attacks.base import Attack
from advx.threat import L0, L1, L2, Linf, Threat

__all__ = ["AttackSpec", "resolve_attacks", "NAMES", "PRESETS"]

log = logging.getLogger(__name__)

AttackLike = Union[str, Attack, Callable[[Threat], Attack]]


@dataclass
class AttackSpec:
    """One member of the ensemble: a name and how to build it for a threat."""

    name: str
    make: Callable[[Threat], Attack]
    supports: Callable[[Threat], bool]
    minimum_norm: bool = False

    def describe(self, threat: Threat) -> str:
        """The attack's configuration, stable across processes (no memory addresses)."""
        if not self.supports(threat):
            return "not run (threat unsupported)"
        text = re.sub(r"<(?:function|bound method) ([\w.]+) at 0x[0-9a-fA-F]+>", r"\1", repr(self.make(threat)))
        return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _import(module: str, names: Sequence[str]) -> Any | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    for name in names:
        if hasattr(mod, name):
            return getattr(mod, name)
    return None


def _apgd(steps: int, loss: str) -> Callable[[Threat], Attack]:
    def make(threat: Threat) -> Attack:
        from advx.attacks.apgd import APGD

        return APGD(threat, steps=steps, loss=loss)

    return make


def _apgdt(steps: int) -> Callable[[Threat], Attack]:
    def make(threat: Threat) -> Attack:
        from advx.attacks.apgd import APGDT

        return APGDT(threat, steps=steps, n_target_classes=9)

    return make


def _fabt(threat: Threat) -> Attack:
    cls = _import("advx.attacks.fab", ["FABT", "FAB"])
    if cls is None:
        raise ValueError("attack 'fab-t' needs advx.attacks.fab, which this install does not have")
    if cls.__name__ == "FABT":
        return cls(threat, steps=100, n_target_classes=9)
    return cls(threat, steps=100, targeted=True, n_target_classes=9)


def _square(threat: Threat) -> Attack:
    from advx.attacks.square import Square

    return Square(threat, queries=5000, p_init=0.8, loss="margin")


def _pgd(threat: Threat) -> Attack:
    from advx.attacks.pgd import PGD

    return PGD(threat, steps=100, restarts=1, loss="ce")


def _fgsm(threat: Threat) -> Attack:
    from advx.attacks.fgsm import FGSM

    return FGSM(threat)


def _any(threat: Threat) -> bool:
    return True


def _not_l0(threat: Threat) -> bool:
    return not isinstance(threat, L0)


def _lp(threat: Threat) -> bool:
    return isinstance(threat, (Linf, L2, L1))


def _linf_l2(threat: Threat) -> bool:
    return isinstance(threat, (Linf, L2))


#: name -> (builder, supported threats, minimum-norm)
NAMES: dict[str, tuple[Callable[[Threat], Attack], Callable[[Threat], bool], bool]] = {
    "apgd-ce": (_apgd(100, "ce"), _not_l0, False),
    "apgd-dlr": (_apgd(100, "dlr"), _not_l0, False),
    "apgd-t": (_apgdt(100), _not_l0, False),
    "fab-t": (_fabt, _lp, True),
    "square": (_square, _linf_l2, False),
    "pgd": (_pgd, _any, False),
    "fgsm": (_fgsm, _any, False),
}

PRESETS: dict[str, list[str]] = {
    "standard": ["apgd-ce", "apgd-t", "fab-t", "square"],
    "fast": ["apgd-ce:25", "apgd-t:25"],
}


def _from_name(name: str) -> AttackSpec:
    base, _, steps = name.partition(":")
    base = base.strip().lower()
    if base not in NAMES:
        raise ValueError(f"attacks: unknown attack {name!r}; use one of {sorted(NAMES)}, 'standard', 'fast', "
                         "an Attack object or a callable threat -> Attack")
    make, supports, min_norm = NAMES[base]
    if steps:
        if base not in ("apgd-ce", "apgd-dlr", "apgd-t"):
            raise ValueError(f"attacks: {name!r}: only the APGD attacks take ':steps'")
        try:
            k = int(steps)
        except ValueError:
            raise ValueError(f"attacks: {name!r}: the part after ':' must be a step count") from None
        make = _apgdt(k) if base == "apgd-t" else _apgd(k, "ce" if base == "apgd-ce" else "dlr")
    return AttackSpec(base if not steps else f"{base}({k})", make, supports, min_norm)


def _from_attack(attack: Attack) -> AttackSpec:
    def make(threat: Threat) -> Attack:
        clone = copy.copy(attack)
        clone.threat = threat
        return clone

    return AttackSpec(type(attack).__name__.lower(), make, lambda t: type(t) is type(attack.threat),
                      bool(getattr(attack, "minimum_norm", False)))


def _from_callable(fn: Callable[[Threat], Attack]) -> AttackSpec:
    def make(threat: Threat) -> Attack:
        attack = fn(threat)
        if not isinstance(attack, Attack):
            raise TypeError(f"attacks: the callable {fn!r} must return an advx Attack, got {type(attack).__name__}")
        return attack

    name = getattr(fn, "__name__", type(fn).__name__)
    return AttackSpec(name, make, _any, False)


def resolve_attacks(attacks: str | Sequence[AttackLike]) -> tuple[list[AttackSpec], list[str]]:
    """The ensemble for ``attacks`` and notes on members that cannot run here."""
    notes: list[str] = []
    if isinstance(attacks, str):
        key = attacks.strip().lower()
        items: list[AttackLike] = list(PRESETS[key]) if key in PRESETS else [a for a in key.split(",") if a]
        if key == "standard" and _import("advx.attacks.fab", ["FABT", "FAB"]) is None:
            items.remove("fab-t")
            notes.append("FAB-T is not part of this install (advx.attacks.fab missing): standard ensemble runs "
                         "APGD-CE, APGD-T and Square")
    elif isinstance(attacks, Attack) or callable(attacks):
        items = [attacks]
    else:
        try:
            items = list(attacks)
        except TypeError:
            raise TypeError(f"attacks must be 'standard', 'fast', a comma-separated string of names or a list, "
                            f"got {type(attacks).__name__}") from None
    if not items:
        raise ValueError("attacks: the ensemble is empty; give at least one attack")
    specs = []
    for item in items:
        if isinstance(item, str):
            specs.append(_from_name(item))
        elif isinstance(item, Attack):
            specs.append(_from_attack(item))
        elif callable(item):
            specs.append(_from_callable(item))
        else:
            raise TypeError(f"attacks: each member must be a name, an Attack or a callable, got {type(item).__name__}")
    seen: dict[str, int] = {}
    for spec in specs:  # unique names for the breakdown
        seen[spec.name] = seen.get(spec.name, 0) + 1
        if seen[spec.name] > 1:
            spec.name = f"{spec.name}#{seen[spec.name]}"
    return specs, notes
