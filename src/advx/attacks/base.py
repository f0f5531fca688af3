"""The contract every tensor attack keeps.

An attack is a small configured object. Calling it,
``attack(model, x, y, target=None, generator=None)``, validates the inputs,
runs the attack's :meth:`Attack.run` hook under :func:`advx.model.attack_mode`,
projects the result into the threat (a no-op for a correct attack, a guarantee
for every attack), and judges success with the model on the returned ``x_adv``.
"""

from __future__ import annotations

import itertools
import logging
import math
import numbers
import operator
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from advx.model import ModelFn, QueryCounter, attack_mode, input_gradient
from advx.model.scores import NonFiniteLogits, check_scores
from advx.threat import Threat, per_sample

__all__ = [
    "Attack", "AttackResult", "AttackContext", "is_adversarial", "UnsupportedThreat", "NonFiniteLogits",
    "BestRuns", "best_of_restarts", "top_targets", "positive_int", "in_range", "as_image", "CONTRACT_QUERIES",
    "query_budget",
]

log = logging.getLogger(__name__)

#: forwards every call spends on each sample besides the attack's own: the clean one and the final judgement.
#: A query budget (``queries=``) includes them: ``result.queries <= queries`` on every sample.
CONTRACT_QUERIES = 2


@dataclass
class AttackResult:
    """Outcome of an attack on a batch of N samples."""

    x_adv: Tensor  #: same shape, dtype and device as x; inside threat and bounds
    success: Tensor  #: (N,) bool, the criterion holds on x_adv (judged by the model)
    distance: Tensor  #: (N,) size of x_adv - x in the threat's norm
    queries: Tensor  #: (N,) forward + backward passes spent on each sample
    gradients: Tensor  #: (N,) backward passes (gradient evaluations) on each sample
    logits: Tensor  #: (N, C) model output on x_adv
    clean_correct: Tensor = field(default=None)  #: (N,) bool, model right on clean x
    #: (N,) bool: the model's logits were NaN/inf at x or x_adv (only with nonfinite="fail"; never a success)
    nonfinite: Tensor = field(default=None)

    @property
    def success_rate(self) -> float:
        return self.success.float().mean().item() if len(self.success) else float("nan")

    def robust_accuracy(self, y: Tensor | None = None) -> float:
        """Fraction of samples correctly classified after the attack.

        For untargeted attacks this is ``clean_correct & ~success``.
        """
        if y is not None:
            return (self.logits.argmax(1) == y.to(self.logits.device)).float().mean().item()
        return (self.clean_correct & ~self.success).float().mean().item()


def is_adversarial(logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
    """Misclassified (untargeted) or classified as ``target`` (targeted)."""
    pred = logits.argmax(dim=1)
    return pred == target if target is not None else pred != y


@dataclass
class AttackContext:
    """What :meth:`Attack.run` gets: the model, counted, and the problem."""

    model: ModelFn
    x: Tensor
    y: Tensor
    target: Tensor | None
    generator: torch.Generator
    counter: QueryCounter
    num_classes: int
    #: (N,) bool: already adversarial at the clean input (nothing to do there)
    initial_success: Tensor

    def forward(self, x: Tensor, idx: Tensor | None = None) -> Tensor:
        """Logits of ``x`` (rows ``idx`` of the batch, or all), counted."""
        self.counter.add(idx, forwards=1)
        with torch.no_grad():
            return self.model(x)

    def gradient(self, x: Tensor, loss_fn, idx: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(loss, d loss / d x, logits) for rows ``idx``; one forward + one backward."""
        self.counter.add(idx, forwards=1, backwards=1)
        return input_gradient(self.model, x, loss_fn)

    def adversarial(self, logits: Tensor, idx: Tensor | None = None) -> Tensor:
        y = self.y if idx is None else self.y[idx]
        target = self.target if idx is None or self.target is None else self.target[idx]
        return is_adversarial(logits, y, target)

    @property
    def targeted(self) -> bool:
        return self.target is not None

    def labels(self, idx: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if idx is None:
            return self.y, self.target
        return self.y[idx], None if self.target is None else self.target[idx]


class Attack(ABC):
    """Base class: subclasses set ``threat`` and implement :meth:`run`.

    ``seed`` makes the attack deterministic when no generator is passed.
    """

    threat: Threat
    #: "minimum-norm" attacks search for the smallest perturbation; others
    #: maximise a loss inside the ball.
    minimum_norm: bool = False
    #: norm names the class supports, set by :func:`advx.attacks.registry.register` (None: unregistered)
    registered_threats: tuple[str, ...] | None = None

    def __init__(self, threat: Threat, seed: int = 0):
        if not isinstance(threat, Threat):
            raise TypeError(f"threat must be an advx.threat.Threat (e.g. Linf(8/255)), got {type(threat).__name__}")
        self.threat = threat
        self.seed = positive_int("seed", seed, minimum=0)
        self.check_threat()

    @abstractmethod
    def run(self, ctx: AttackContext) -> Tensor:
        """Return adversarial inputs for ``ctx.x`` (same shape)."""

    # ----------------------------------------------------------------- public
    def __call__(
        self,
        model: ModelFn,
        x: Tensor,
        y: Tensor,
        target: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        nonfinite: str = "raise",
    ) -> AttackResult:
        """Attack ``model`` on the batch ``x`` (labels ``y``; ``target`` makes it targeted).

        A model returning NaN or inf logits raises :class:`NonFiniteLogits`; with
        ``nonfinite="fail"`` those samples are marked failed instead (never success),
        with a warning. N = 0 returns an empty result without calling the model.
        Inputs of another floating dtype than the model's (an ``nn.Module`` with
        floating parameters) are attacked in the model's dtype and returned in theirs.
        """
        if not callable(model):
            raise TypeError(f"model must be callable (an nn.Module or a function of x), got {type(model).__name__}")
        if nonfinite not in ("raise", "fail"):
            raise ValueError(f"nonfinite must be 'raise' or 'fail', got {nonfinite!r}")
        self.check_threat()
        _check_inputs(self.threat, x, y, target)
        n = x.shape[0]
        if n == 0:
            return _empty_result(x)
        if generator is None:
            generator = torch.Generator(device=x.device).manual_seed(self.seed)
        work = _model_dtype(model, x)
        xw = x if work == x.dtype else x.to(work)
        with attack_mode(model) as m, torch.no_grad():
            guarded = _FiniteLogits(m, type(self).__name__, raise_=nonfinite == "raise")
            counter = QueryCounter(n, x.device)
            clean_logits = _first_forward(guarded, xw)
            counter.add(None, forwards=1)
            num_classes = guarded.classes = clean_logits.shape[1]
            _check_labels(y, target, num_classes)
            clean_ok = _finite_rows(clean_logits)
            clean_success = is_adversarial(clean_logits, y, target) & clean_ok
            ctx = AttackContext(guarded, xw, y, target, generator, counter, num_classes, clean_success)
            x_adv = self.run(ctx).detach().to(dtype=x.dtype)
            bad = ~_finite_rows(x_adv)
            if bool(bad.any()):
                warnings.warn(f"{type(self).__name__}: x_adv had non-finite values on {int(bad.sum())} of {n} "
                              "samples (NaN gradients?); those samples are returned as x", UserWarning, stacklevel=2)
                x_adv = torch.where(per_sample(bad, x_adv), x, x_adv)
            x_adv = self.threat.project(x_adv, x)
            logits = guarded(x_adv if work == x.dtype else x_adv.to(work))
            counter.add(None, forwards=1)
            ok = _finite_rows(logits)
            success = is_adversarial(logits, y, target) & ok
            keep = clean_success & ~success  # never worse than the clean input itself
            if bool(keep.any()):
                x_adv[keep], logits[keep], success[keep] = x[keep], clean_logits[keep], True
            clean_correct = (clean_logits.argmax(1) == y) & clean_ok
            nonfinite = ~_finite_rows(logits) | ~clean_ok  # as returned: a row put back to x has x's logits
            if bool(nonfinite.any()):
                warnings.warn(f"{type(self).__name__}: the model returned non-finite logits on "
                              f"{int(nonfinite.sum())} of {n} samples; they are marked failed",
                              UserWarning, stacklevel=2)
        return AttackResult(
            x_adv=x_adv,
            success=success,
            distance=self.threat.distance(x_adv, x),
            queries=counter.total,
            gradients=counter.backwards.clone(),
            logits=logits,
            clean_correct=clean_correct,
            nonfinite=nonfinite,
        )

    def check_threat(self) -> None:
        """Refuse a ``self.threat`` this attack's registration does not list (:mod:`advx.attacks.registry`).

        Raises :class:`UnsupportedThreat` (a TypeError and a ValueError) naming the attack, the
        supported threats and the given one. Unregistered attacks (a user's own) check nothing
        here; a subclass of a registered attack inherits its threats (``register`` stores them
        on the class as ``registered_threats``).
        """
        allowed = getattr(type(self), "registered_threats", None)
        norm = getattr(self.threat, "norm_name", None)
        if allowed is None or norm in allowed:
            return
        raise UnsupportedThreat(f"threat: {type(self).__name__} supports advx.threat.{threat_label(allowed)} threats, "
                                f"got {type(self.threat).__name__}; pass e.g. {threat_label(allowed[:1])}(eps)")

    def require_threat(self, *allowed: type[Threat]) -> None:
        """Refuse (:class:`UnsupportedThreat`) a ``self.threat`` that is none of the ``allowed`` classes.

        For attacks outside the registry; registered attacks declare their threats in ``register``.
        """
        if not isinstance(self.threat, allowed):
            names = [t.__name__ for t in allowed]
            listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
            raise UnsupportedThreat(f"threat: {type(self).__name__} supports advx.threat.{listed} threats, got "
                                    f"{type(self.threat).__name__}; pass e.g. {names[0]}(eps)")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k not in ("threat", "seed"))
        return f"{type(self).__name__}({self.threat!r}{', ' if fields else ''}{fields})"



#: norm name -> the threat class users construct (for messages)
THREAT_CLASSES = {"linf": "Linf", "l2": "L2", "l1": "L1", "l0": "L0", "db": "Decibels"}


def threat_label(norm_names: tuple[str, ...]) -> str:
    """("linf", "l2") -> "Linf or L2": the threat classes users construct, listed."""
    names = [THREAT_CLASSES.get(n, n) for n in norm_names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


class UnsupportedThreat(TypeError, ValueError):
    """The attack does not support this kind of threat (a TypeError and, for callers that expect it, a ValueError)."""


class _FiniteLogits:
    """The model, with every output checked by :func:`advx.model.scores.check_scores`: (N, classes) logits,
    the class count of the clean forward, no NaN/inf (raise :class:`NonFiniteLogits`, or let the caller mark
    the rows failed)."""

    def __init__(self, model: ModelFn, attack: str, raise_: bool = True):
        self.model, self.attack, self.raise_ = model, attack, raise_
        self.classes: int | None = None  #: set after the clean forward: every later output must keep it

    def __call__(self, x: Tensor) -> Tensor:
        return check_scores(
            self.model(x), len(x), self.classes, where=f"model (during {self.attack})", what="logits",
            finite=self.raise_, convert=False,
            expected=f"{self.classes} at the clean input; a model must keep its class count",
            hint=". Check the model and the scale of its inputs, or call the attack with nonfinite='fail' to mark "
                 "those samples failed")

    def __getattr__(self, name):  # attributes of the wrapped model (e.g. .training) stay visible
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)


def _finite_rows(t: Tensor) -> Tensor:
    return torch.isfinite(t).reshape(len(t), -1).all(1)


def _model_dtype(model, x: Tensor) -> torch.dtype:
    """The floating dtype of an nn.Module's first floating parameter or buffer; else x's (a plain callable)."""
    if isinstance(model, torch.nn.Module):
        for t in itertools.chain(model.parameters(), model.buffers()):
            if t.is_floating_point():
                return t.dtype
    return x.dtype


def _first_forward(model, x: Tensor) -> Tensor:
    """The clean forward; a dtype clash inside the model becomes an error naming x's dtype."""
    try:
        return model(x)
    except RuntimeError as e:
        text = str(e)
        if x.dtype != torch.float32 and ("type" in text.lower() or "dtype" in text.lower()):
            raise TypeError(f"x has dtype {x.dtype}, which the model does not take ({text.splitlines()[0]}); "
                            "convert x to the model's dtype, e.g. x.float()") from e
        raise


def _empty_result(x: Tensor) -> AttackResult:
    """The result for N = 0: nothing attacked, nothing spent (the model is not called)."""
    none = torch.zeros(0, dtype=torch.long, device=x.device)
    no = torch.zeros(0, dtype=torch.bool, device=x.device)
    return AttackResult(x_adv=x.clone(), success=no, distance=x.new_zeros(0), queries=none, gradients=none.clone(),
                        logits=x.new_zeros((0, 0)), clean_correct=no.clone(), nonfinite=no.clone())


def _check_inputs(threat: Threat, x: Tensor, y: Tensor, target: Tensor | None) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}; convert with x.float()")
    if x.dim() < 2:
        raise ValueError(f"x must be a batch of shape (N, ...), got shape {tuple(x.shape)}; add a batch dimension")
    if bool(torch.isnan(x).any()):
        raise ValueError("x contains NaN values; clean the inputs before attacking")
    threat.check(x, "x")
    for name, labels in (("y", y), ("target", target)):
        if labels is None:
            continue
        if not isinstance(labels, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(labels).__name__}")
        if labels.dtype != torch.long:
            raise TypeError(f"{name} must have dtype torch.int64 (long), got {labels.dtype}; use {name}.long()")
        if labels.shape != (x.shape[0],):
            raise ValueError(f"{name} must have shape ({x.shape[0]},) to match x, got {tuple(labels.shape)}")
        if labels.device != x.device:
            raise ValueError(f"{name} is on {labels.device} but x is on {x.device}; move them to one device")


def _check_labels(y: Tensor, target: Tensor | None, num_classes: int) -> None:
    for name, labels in (("y", y), ("target", target)):
        if labels is not None and len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(f"{name} has labels outside [0, {num_classes - 1}] (the model returns {num_classes} classes)")
    if target is not None and bool((target == y).any()):
        bad = int((target == y).nonzero()[0])
        raise ValueError(f"target equals the true label y at index {bad}; a targeted attack needs target != y")


# ------------------------------------------------------------ shared by attacks
def as_image(x: Tensor) -> Tensor:
    """A (N, C, H, W) view of a batch: (N, D) -> (N, 1, 1, D), (N, C, L) -> (N, C, 1, L), extra dims folded into W.

    Lets the square- and pixel-based black-box attacks treat vectors and signals as one-row images.
    """
    if x.dim() == 2:
        return x[:, None, None, :]
    if x.dim() == 3:
        return x[:, :, None, :]
    return x.reshape(x.shape[0], x.shape[1], x.shape[2], -1)


def positive_int(name: str, value, minimum: int = 1, note: str = "") -> int:
    """``value`` as an int, refused (ValueError naming ``name``) below ``minimum`` or when not a whole number.

    Integers, integral floats (``1e3``) and digit strings pass; ``2.5``, ``True``, NaN and ``"2.5"`` do not
    (no silent rounding).
    """
    number = _whole(value)
    if number is None:
        if value is None or not isinstance(value, (numbers.Number, str, Tensor)):
            raise TypeError(f"{name} must be a whole number >= {minimum}{note}, got {value!r}")
        raise ValueError(f"{name} must be a whole number >= {minimum}{note}, got {value!r}")
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}{note}, got {value!r}")
    return number


def _whole(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.lstrip("+-").isdigit() else None
    if isinstance(value, Tensor):
        if value.numel() != 1:
            return None
        value = value.item()
    try:
        return operator.index(value)
    except TypeError:
        pass
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if math.isfinite(f) and f.is_integer() else None


def query_budget(queries, restarts: int = 1) -> int:
    """``queries`` checked as a hard per-sample budget: at least one forward per restart besides the contract's 2."""
    least = CONTRACT_QUERIES + restarts
    return positive_int("queries", queries, minimum=least,
                        note=f" (the budget includes the clean forward and the final judgement{'' if restarts == 1 else f', and one forward per restart ({restarts})'})")


def in_range(name: str, value, low: float | None = None, high: float | None = None, *,
             low_open: bool = False, high_open: bool = False, note: str = "") -> float:
    """``float(value)``, refused (ValueError naming ``name``) outside the interval; NaN is refused."""
    try:
        v = float(value)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{name} must be a number, got {value!r}") from None
    fits = (low is None or (v > low if low_open else v >= low)) and (high is None or (v < high if high_open else v <= high))
    if not fits:
        if high is None:
            want = f"{'>' if low_open else '>='} {low:g}"
        elif low is None:
            want = f"{'<' if high_open else '<='} {high:g}"
        else:
            want = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be {want}{note}, got {value!r}")
    return v


@dataclass
class BestRuns:
    """Per sample, the best point over several runs: the first adversarial one, else the highest loss.

    ``done`` marks the samples a run has fooled (or the clean input already did);
    later runs skip them.
    """

    x: Tensor  #: (N, ...) the point kept for each sample (x itself until a run improves on it)
    loss: Tensor  #: (N,) its loss (-inf before any run)
    done: Tensor  #: (N,) bool

    @classmethod
    def start(cls, ctx: AttackContext) -> BestRuns:
        x = ctx.x
        return cls(x.clone(), torch.full((len(x),), -torch.inf, dtype=x.dtype, device=x.device),
                   ctx.initial_success.clone())

    def todo(self) -> Tensor:
        """Indices of the samples not yet done."""
        return (~self.done).nonzero().squeeze(1)

    def update(self, idx: Tensor, x_run: Tensor, loss_run: Tensor, adversarial: Tensor) -> None:
        """Take a run on rows ``idx`` where it fooled the model or raised the loss."""
        better = adversarial | (loss_run > self.loss[idx])
        self.x[idx[better]] = x_run[better]
        self.loss[idx[better]] = loss_run[better].to(self.loss.dtype)
        self.done[idx[adversarial]] = True


#: one run on rows ``idx`` -> (their points, losses, adversarial)
OneRun = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]


def best_of_restarts(ctx: AttackContext, restarts: int, one_run: OneRun, best: BestRuns | None = None) -> Tensor:
    """Run ``one_run`` up to ``restarts`` times, each only on the samples not yet fooled.

    Keeps per sample the first adversarial point, else the one with the highest
    loss. Pass ``best`` to carry the choice over several calls (e.g. one per target).
    """
    best = BestRuns.start(ctx) if best is None else best
    for _ in range(restarts):
        todo = best.todo()
        if len(todo) == 0:
            break
        best.update(todo, *one_run(todo))
    return best.x


def top_targets(ctx: AttackContext, k: int) -> Iterator[Tensor]:
    """The (N,) target classes of rank 1..min(k, C - 1): the classes other than y by clean logit.

    The ranking costs one counted forward on the samples not adversarial at
    the clean input (the other rows get class 0 and should be skipped); nothing
    is yielded when there are none. Used by the targeted-loop attacks
    (APGD-T, FAB-T), which run each target on the samples still robust.
    """
    x, y = ctx.x, ctx.y
    todo = (~ctx.initial_success).nonzero().squeeze(1)
    if len(todo) == 0:
        return
    ranked = torch.zeros(len(x), ctx.num_classes - 1, dtype=torch.long, device=x.device)
    order = ctx.forward(x[todo], todo).argsort(dim=1, descending=True)
    ranked[todo] = order[order != y[todo, None]].reshape(len(todo), -1)
    for rank in range(min(k, ctx.num_classes - 1)):
        yield ranked[:, rank]
