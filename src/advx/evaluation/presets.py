"""The attack ensembles an evaluation runs, by name.

* ``"autoattack"``: the standard version of AutoAttack (Croce & Hein, ICML 2020,
  https://arxiv.org/abs/2003.01690) with its budgets, for exact comparisons:
  APGD-CE (100 iterations), APGD-T (targeted DLR, 100 iterations, 9 target
  classes or C - 1), FAB-T (minimum norm, 9 targets) and Square (5 000 queries,
  Linf and L2 only), each later attack only on the points still robust.
* ``"standard"``: as strong, at a fraction of the model passes. APGD-CE (100);
  APGD-T on the 2 targets MALT ranks nearest (Melamed, Yehudai & Shamir,
  NeurIPS 2024, https://arxiv.org/abs/2407.02240) instead of the 9 with the
  highest logits; FAB-T (3 targets) only on the points the attacks before it brought close
  to the boundary (margin at the best point found below a tenth of the clean
  margin: the online discarding of Liu et al.'s A3, CVPR 2022, by a simpler
  rule); Square on a random tenth of the surviving points (at least 4 per
  batch), and on all of them as soon as it breaks one of the sample or the
  gradient probe finds masked gradients -- so a model whose gradients mislead
  cannot hide behind the saving.
* ``"thorough"``: everything ``"autoattack"`` runs, with the same seeds, then
  MALT-targeted APGD-T (3 targets, 2 restarts) on what survives: never weaker
  than ``"autoattack"`` on the same points, by construction.
* ``"fast"``: APGD-CE + APGD-T with 25 iterations each.

A custom list may mix names (see :data:`NAMES`), configured
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
from advx.threat import Threat

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
    #: run only on points whose margin, at the best point the earlier attacks found, fell below this share
    #: of their clean margin (None: on every point still robust)
    only_close: float | None = None
    #: run on a random share of the points still robust (at least ``min_sample``), and on the rest of them
    #: once it breaks one of the sample or the gradient probe finds masking (None: on every point)
    sample: float | None = None
    min_sample: int = 4

    def policy(self) -> str:
        """Which points it runs on, in words (empty: every point still robust)."""
        parts = []
        if self.only_close is not None:
            parts.append(f"only where the margin fell below {self.only_close:g} x the clean margin")
        if self.sample is not None:
            parts.append(f"on a random {self.sample:.0%} of the survivors (at least {self.min_sample}), on all of "
                         "them once it breaks one or the gradients look masked")
        return "; ".join(parts)

    def describe(self, threat: Threat) -> str:
        """The attack's configuration, stable across processes (no memory addresses)."""
        if not self.supports(threat):
            return "not run (threat unsupported)"
        text = re.sub(r"<(?:function|bound method) ([\w.]+) at 0x[0-9a-fA-F]+>", r"\1", repr(self.make(threat)))
        text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)
        return f"{text} [{self.policy()}]" if self.policy() else text


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


def _malt(targets: int, restarts: int = 1) -> Callable[[Threat], Attack]:
    def make(threat: Threat) -> Attack:
        from advx.attacks.malt import MALT

        return MALT(threat, steps=100, n_target_classes=targets, restarts=restarts)

    return make


def _fabt_k(targets: int) -> Callable[[Threat], Attack]:
    def make(threat: Threat) -> Attack:
        cls = _import("advx.attacks.fab", ["FABT", "FAB"])
        if cls is None:
            raise ValueError("attack 'fab-t' needs advx.attacks.fab, which this install does not have")
        if cls.__name__ == "FABT":
            return cls(threat, steps=100, n_target_classes=targets)
        return cls(threat, steps=100, targeted=True, n_target_classes=targets)

    return make


_fabt = _fabt_k(9)


def _square(threat: Threat) -> Attack:
    from advx.attacks.square import Square

    return Square(threat, queries=5000, p_init=0.8, loss="margin")


def _pgd(threat: Threat) -> Attack:
    from advx.attacks.pgd import PGD

    return PGD(threat, steps=100, restarts=1, loss="ce")


def _fgsm(threat: Threat) -> Attack:
    from advx.attacks.fgsm import FGSM

    return FGSM(threat)


#: name -> builder with the preset budgets; which threats each takes, and whether it is minimum-norm, is the
#: registry's (advx.attacks.registry: the one source)
NAMES: dict[str, Callable[[Threat], Attack]] = {
    "apgd-ce": _apgd(100, "ce"),
    "apgd-dlr": _apgd(100, "dlr"),
    "apgd-t": _apgdt(100),
    "malt": _malt(3),
    "fab-t": _fabt,
    "square": _square,
    "pgd": _pgd,
    "fgsm": _fgsm,
}


def _any(threat: Threat) -> bool:
    return True


#: preset members: a name from NAMES, or (name, builder or None for the name's own, AttackSpec options)
Member = Union[str, tuple[str, Union[Callable[[Threat], Attack], None], dict]]

AUTOATTACK: list[Member] = ["apgd-ce", "apgd-t", "fab-t", "square"]

PRESETS: dict[str, list[Member]] = {
    "autoattack": AUTOATTACK,
    "standard": ["apgd-ce", ("malt-2", _malt(2), {}), ("fab-t", _fabt_k(3), {"only_close": 0.1}),
                 ("square", None, {"sample": 0.1})],
    "thorough": [*AUTOATTACK, ("malt-3x2", _malt(3, restarts=2), {})],
    "fast": ["apgd-ce:25", "apgd-t:25"],
}


def _from_name(name: str) -> AttackSpec:
    base, _, steps = name.partition(":")
    base = base.strip().lower()
    if base not in NAMES and not steps:
        registered = _registered(base)
        if registered is not None:
            return registered
    if base not in NAMES:
        raise ValueError(f"attacks: unknown attack {name!r}; use one of {sorted(NAMES)}, a preset ({', '.join(PRESETS)}), "
                         "an Attack object or a callable threat -> Attack")
    from advx.attacks import registry

    info = registry.get(base)
    make, supports, min_norm = NAMES[base], info.supports, info.kind == "minimum-norm"
    if steps:
        if base not in ("apgd-ce", "apgd-dlr", "apgd-t"):
            raise ValueError(f"attacks: {name!r}: only the APGD attacks take ':steps'")
        try:
            k = int(steps)
        except ValueError:
            raise ValueError(f"attacks: {name!r}: the part after ':' must be a step count") from None
        make = _apgdt(k) if base == "apgd-t" else _apgd(k, "ce" if base == "apgd-ce" else "dlr")
    return AttackSpec(base if not steps else f"{base}({k})", make, supports, min_norm)


def _registered(name: str) -> AttackSpec | None:
    """Any other attack of the registry (a user's own, registered with advx.attacks.registry.register)."""
    from advx.attacks import registry

    try:
        info = registry.get(name)
    except ValueError:
        return None

    def make(threat: Threat) -> Attack:
        return registry.build_attack(info.name, threat)

    return AttackSpec(info.name, make, info.supports, info.kind == "minimum-norm")


def _from_member(member: Member) -> AttackSpec:
    if isinstance(member, str):
        return _from_name(member)
    name, make, options = member
    spec = _from_name(name if name in NAMES else name.split("-")[0])
    spec.name = name
    if make is not None:
        spec.make = make
    for key, value in options.items():
        setattr(spec, key, value)
    return spec


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
        if key in PRESETS:
            members = list(PRESETS[key])
            if _import("advx.attacks.fab", ["FABT", "FAB"]) is None:
                members = [m for m in members if (m if isinstance(m, str) else m[0]) != "fab-t"]
                notes.append(f"FAB-T is not part of this install (advx.attacks.fab missing): the {key} ensemble "
                             "runs without it")
            return _unique([_from_member(m) for m in members]), notes
        items: list[AttackLike] = [a for a in key.split(",") if a]
    elif isinstance(attacks, Attack) or callable(attacks):
        items = [attacks]
    else:
        try:
            items = list(attacks)
        except TypeError:
            raise TypeError(f"attacks must be a preset ({', '.join(PRESETS)}), a comma-separated string of names or a list, "
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
    return _unique(specs), notes


def _unique(specs: list[AttackSpec]) -> list[AttackSpec]:
    seen: dict[str, int] = {}
    for spec in specs:  # unique names for the breakdown
        seen[spec.name] = seen.get(spec.name, 0) + 1
        if seen[spec.name] > 1:
            spec.name = f"{spec.name}#{seen[spec.name]}"
    return specs
