"""The one registry of tensor attacks: name, threats, kind, budget, paper.

Each attack class registers itself in its own file with a class decorator::

    @register("pgd", threats=("linf", "l2", "l1", "l0", "db"), kind="gradient",
              budget=("steps", "restarts"), summary="projected gradient descent (Madry et al. 2018)")
    class PGD(Attack): ...

Decorators stack for variants of one class that differ in fixed constructor
options (``apgd-ce`` / ``apgd-dlr`` are APGD with ``loss="ce"`` / ``"dlr"``).
Everything that names attacks reads this registry: the attack's own threat
check (:meth:`advx.attacks.base.Attack.check_threat`), :func:`build_attack`
(``advx attack --attack NAME``, evaluation presets), ``advx attacks``, the
contract suite (``tests/test_attack_contract.py``) and the README's support
table (``scripts/support_table.py``).

Threats are named by their ``norm_name``: "linf", "l2", "l1", "l0", "db"
(:class:`advx.audio.Decibels`). Budget parameters are the common knobs that
:func:`build_attack` forwards: ``steps`` and ``restarts`` only to the iterative
loss-maximising attacks that list them (minimum-norm attacks keep their own
defaults: their "steps" mean something else), ``queries`` to the score- and
decision-based ones, for which it is a hard limit on ``result.queries``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from dataclasses import dataclass, field
from typing import Any

from advx.attacks.base import positive_int, threat_label
from advx.threat import Threat

__all__ = ["AttackInfo", "KINDS", "THREATS", "BUDGETS", "register", "attacks", "get", "build_attack",
           "registrations", "supported_threats", "threat_label"]

log = logging.getLogger(__name__)

#: the kinds of attack, in the order listings use
KINDS = ("gradient", "minimum-norm", "score-based", "decision-based", "transfer")
#: threat norm names an attack may support
THREATS = ("linf", "l2", "l1", "l0", "db")
#: the budget parameters build_attack forwards
BUDGETS = ("steps", "restarts", "queries")


@dataclass(frozen=True)
class AttackInfo:
    """One registered attack (one variant of an attack class)."""

    name: str  #: CLI name: "pgd", "apgd-ce", "square", "hopskipjump", ...
    cls: type  #: the Attack class
    threats: tuple[str, ...]  #: norm names the attack supports
    kind: str  #: one of KINDS
    budget: tuple[str, ...]  #: the budget parameters build_attack forwards (subset of BUDGETS)
    targeted: bool  #: accepts target=
    summary: str  #: one line, with the paper
    options: dict = field(default_factory=dict, hash=False)  #: fixed constructor options of this variant

    @property
    def black_box(self) -> bool:
        """Score- or decision-based: sees only the model's outputs and spends ``queries``."""
        return self.kind in ("score-based", "decision-based")

    def supports(self, threat) -> bool:
        return getattr(threat, "norm_name", None) in self.threats


_REGISTRY: dict[str, AttackInfo] = {}


def register(name: str, *, threats: tuple[str, ...], kind: str, budget: tuple[str, ...] = (), targeted: bool = True,
             summary: str, options: dict | None = None):
    """Class decorator: register ``cls`` as attack ``name`` (stackable for variants)."""
    key = name.strip().lower()
    if not key or key != name:
        raise ValueError(f"register: attack names are lower-case without spaces, got {name!r}")
    threats, budget = tuple(threats), tuple(budget)
    bad = [t for t in threats if t not in THREATS]
    if not threats or bad:
        raise ValueError(f"register({name!r}): threats must be a non-empty subset of {THREATS}, got {threats}")
    if kind not in KINDS:
        raise ValueError(f"register({name!r}): kind must be one of {KINDS}, got {kind!r}")
    bad = [b for b in budget if b not in BUDGETS]
    if bad:
        raise ValueError(f"register({name!r}): budget parameters must be among {BUDGETS}, got {bad}")
    if not summary or "\n" in summary:
        raise ValueError(f"register({name!r}): summary must be one line")

    def decorate(cls: type) -> type:
        accepted = inspect.signature(cls).parameters
        missing = [p for p in (*budget, *(options or {})) if p not in accepted]
        if missing:
            raise ValueError(f"register({name!r}): {cls.__name__} takes no {', '.join(missing)}")
        old = _REGISTRY.get(key)
        if old is not None and (old.cls.__module__, old.cls.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"register: attack name {name!r} is taken by {old.cls.__module__}.{old.cls.__qualname__}")
        _REGISTRY[key] = AttackInfo(key, cls, threats, kind, budget, bool(targeted), summary, dict(options or {}))
        own = cls.__dict__.get("registered_threats") or ()  # the union over this class's variants
        cls.registered_threats = tuple(t for t in THREATS if t in own or t in threats)
        return cls

    return decorate


def _load_all() -> None:
    """Import every module of advx.attacks, so that each attack file has registered itself."""
    package = importlib.import_module("advx.attacks")  # by name: the package imports this module
    for mod in pkgutil.iter_modules(package.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"advx.attacks.{mod.name}")


def attacks() -> dict[str, AttackInfo]:
    """Every registered attack by name, grouped by kind (KINDS order), alphabetical within a kind."""
    _load_all()
    order = {k: i for i, k in enumerate(KINDS)}
    return dict(sorted(_REGISTRY.items(), key=lambda kv: (order[kv[1].kind], kv[0])))


def get(name: str) -> AttackInfo:
    """The attack registered as ``name`` (case-insensitive); ValueError naming the known ones."""
    if not isinstance(name, str):
        raise TypeError(f"attack name must be a string, got {type(name).__name__}")
    known = attacks()
    key = name.strip().lower()
    if key not in known:
        raise ValueError(f"attack {name!r} is unknown; use one of {', '.join(known)} (list them with `advx attacks`)")
    return known[key]


def registrations(cls: type) -> list[AttackInfo]:
    """The registrations of ``cls``, or of its nearest registered ancestor (a user's subclass inherits them)."""
    for klass in cls.__mro__:
        found = [info for info in _REGISTRY.values() if info.cls is klass]
        if found:
            return found
    return []


def supported_threats(cls: type) -> tuple[str, ...] | None:
    """Norm names ``cls`` supports (union over its variants, inherited by subclasses); None if unregistered."""
    return getattr(cls, "registered_threats", None)


def build_attack(name: str, threat, *, steps: int | None = None, restarts: int | None = None,
                 queries: int | None = None, seed: int = 0, options: dict[str, Any] | None = None):
    """The attack registered as ``name``, configured for ``threat``.

    ``steps``/``restarts`` reach only the attacks whose budget lists them (the
    others keep their own defaults; a debug log says so), ``queries`` only the
    score- and decision-based ones. ``options`` are constructor arguments of
    this attack and win over both (e.g. ``{"steps": 100, "binary_search_steps": 5}``
    for cw); an option the attack does not take is a ValueError naming it.
    """
    info = get(name)
    if not isinstance(threat, Threat):
        raise TypeError(f"threat must be an advx.threat.Threat (e.g. Linf(8/255)), got {type(threat).__name__}")
    if not info.supports(threat):
        raise ValueError(f"attack {info.name!r} does not support the {threat.norm_name} threat; it works with "
                         f"{', '.join(info.threats)} (e.g. --threat {info.threats[0]}:...)")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict of constructor arguments, got {type(options).__name__}")
    accepted = inspect.signature(info.cls).parameters
    user = dict(options or {})
    unknown = sorted(set(user) - set(accepted) - {"threat"})
    if unknown or "threat" in user:
        takes = ", ".join(p for p in accepted if p not in ("threat", "seed"))
        bad = unknown or ["threat"]
        raise ValueError(f"attack {info.name!r} does not take option(s) {', '.join(bad)}; it takes {takes}")
    fixed = sorted(k for k in user if k in info.options and user[k] != info.options[k])
    if fixed:
        raise ValueError(f"attack {info.name!r} fixes {', '.join(f'{k}={info.options[k]!r}' for k in fixed)}; "
                         f"pick another registered variant (see `advx attacks`)")
    kwargs = {**info.options, **user}
    for arg, value in (("steps", steps), ("restarts", restarts), ("queries", queries)):
        if value is None or arg in user:
            continue
        if arg in info.budget:
            kwargs[arg] = positive_int(arg, value)
        else:
            log.debug("attack %s takes no common %s; ignoring %s=%s", info.name, arg, arg, value)
    if "seed" in accepted:
        kwargs["seed"] = positive_int("seed", seed, minimum=0)
    return info.cls(threat, **kwargs)
