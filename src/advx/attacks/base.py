"""The contract every tensor attack keeps.

An attack is a small configured object. Calling it,
``attack(model, x, y, target=None, generator=None)``, validates the inputs,
runs the attack's :meth:`Attack.run` hook under :func:`advx.model.attack_mode`,
projects the result into the threat (a no-op for a correct attack, a guarantee
for every attack), and judges success with the model on the returned ``x_adv``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from advx.model import ModelFn, QueryCounter, attack_mode, input_gradient
from advx.threat import Threat

__all__ = [
    "Attack", "AttackResult", "AttackContext", "is_adversarial",
    "BestRuns", "best_of_restarts", "top_targets", "positive_int", "in_range", "as_image",
]

log = logging.getLogger(__name__)


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

    def __init__(self, threat: Threat, seed: int = 0):
        if not isinstance(threat, Threat):
            raise TypeError(f"threat must be an advx.threat.Threat (e.g. Linf(8/255)), got {type(threat).__name__}")
        self.threat = threat
        self.seed = int(seed)

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
    ) -> AttackResult:
        if not callable(model):
            raise TypeError(f"model must be callable (an nn.Module or a function of x), got {type(model).__name__}")
        _check_inputs(self.threat, x, y, target)
        if generator is None:
            generator = torch.Generator(device=x.device).manual_seed(self.seed)
        with attack_mode(model) as m, torch.no_grad():
            n = x.shape[0]
            counter = QueryCounter(n, x.device)
            clean_logits = m(x)
            counter.add(None, forwards=1)
            _check_logits(clean_logits, n)
            num_classes = clean_logits.shape[1]
            _check_labels(y, target, num_classes)
            clean_success = is_adversarial(clean_logits, y, target)
            ctx = AttackContext(m, x, y, target, generator, counter, num_classes, clean_success)
            if n == 0:
                x_adv = x.clone()
            else:
                x_adv = self.run(ctx).detach()
            x_adv = self.threat.project(x_adv.to(dtype=x.dtype), x)
            logits = m(x_adv) if n else clean_logits
            counter.add(None, forwards=1)
            success = is_adversarial(logits, y, target)
            keep = clean_success & ~success  # never worse than the clean input itself
            if bool(keep.any()):
                x_adv[keep], logits[keep], success[keep] = x[keep], clean_logits[keep], True
            clean_correct = clean_logits.argmax(1) == y
        return AttackResult(
            x_adv=x_adv,
            success=success,
            distance=self.threat.distance(x_adv, x),
            queries=counter.total,
            gradients=counter.backwards.clone(),
            logits=logits,
            clean_correct=clean_correct,
        )

    def require_threat(self, *allowed: type[Threat]) -> None:
        """Refuse (TypeError) a ``self.threat`` that is none of the ``allowed`` classes."""
        if not isinstance(self.threat, allowed):
            names = [t.__name__ for t in allowed]
            listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
            raise TypeError(f"threat: {type(self).__name__} supports advx.threat.{listed} threats, got "
                            f"{type(self.threat).__name__}; pass e.g. {names[0]}(eps)")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k not in ("threat", "seed"))
        return f"{type(self).__name__}({self.threat!r}{', ' if fields else ''}{fields})"


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


def _check_logits(logits: Tensor, n: int) -> None:
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != n:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"model must return logits of shape (N, classes) = ({n}, C), got {shape}")


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
    """``int(value)``, refused (ValueError naming ``name``) below ``minimum``."""
    try:
        number = int(value)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{name} must be a whole number >= {minimum}{note}, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}{note}, got {value!r}")
    return number


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
