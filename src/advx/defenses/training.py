"""Adversarial-training objectives for :func:`advx.defenses.loop.train` (``TrainConfig(defense=...)``).

Each objective is ``(model, x, y, generator) -> (loss, logits)``: it crafts the
batch's adversarial examples with the threat's own projection and steepest-ascent
step (in eval mode, gradients with respect to the input only, randomness from
the epoch's ``generator``, so a resumed run repeats itself), then returns the
loss to minimise and the logits on the adversarial batch (the train accuracy
the loop reports is therefore robust train accuracy).

* ``pgd`` -- PGD adversarial training: Madry, Makelov, Schmidt, Tsipras & Vladu,
  "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018
  (https://arxiv.org/abs/1706.06083): minimise the cross-entropy at the point
  PGD-k (random start) finds in the ball.
* ``fgsm-rs`` -- "Fast is better than free": Wong, Rice & Kolter, ICLR 2020
  (https://arxiv.org/abs/2001.03994): one FGSM step of 1.25 eps from a uniform
  random start. Its failure mode, catastrophic overfitting (PGD accuracy falls
  to ~0 within an epoch while FGSM accuracy soars), is guarded by
  :class:`OverfitGuard`: PGD accuracy on a fixed batch after each epoch; a drop
  of more than 0.2 stops training and restores the previous epoch's weights.
* ``trades`` -- Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, "Theoretically
  Principled Trade-off between Robustness and Accuracy", ICML 2019
  (https://arxiv.org/abs/1901.08573): CE(f(x), y) + beta * KL(f(x) || f(x')),
  x' maximising the KL in the ball (PGD from x + 0.001 N(0, I)).
* ``noise`` -- Gaussian data augmentation, the base-classifier recipe of
  randomized smoothing (Cohen, Rosenfeld & Kolter 2019): CE at x + N(0, sigma^2 I).
* ``temperature`` / ``distill`` -- defensive distillation, see :mod:`advx.defenses.distillation`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from advx.attacks.base import positive_int
from advx.defenses.loop import EpochStats, register_defense
from advx.model import input_gradient
from advx.threat import Linf, Threat, parse_threat

__all__ = ["PGDTraining", "FGSMRSTraining", "TRADES", "NoiseTraining", "OverfitGuard", "RobustAccuracy", "pgd_accuracy",
           "inner_maximize"]

log = logging.getLogger(__name__)


def _threat(threat: Threat | str | None, eps: float | None) -> Threat:
    """A threat from an object, a spec string ("linf:0.1"), or an Linf radius (JSON-able options)."""
    if isinstance(threat, Threat):
        return threat if eps is None else threat.with_eps(eps)
    if isinstance(threat, str):
        parsed = parse_threat(threat)
        if len(parsed) != 1:
            raise ValueError(f"threat must name one radius, e.g. 'linf:0.1', got {threat!r}")
        return parsed[0] if eps is None else parsed[0].with_eps(eps)
    if eps is None:
        raise ValueError("give eps= (an Linf radius) or threat= (e.g. 'linf:0.1' or Linf(0.1))")
    return Linf(eps)


def _local(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def inner_maximize(model: nn.Module, x: Tensor, loss_fn: Callable[[Tensor], Tensor], threat: Threat, steps: int,
                   rel_step_size: float, start: Tensor) -> Tensor:
    """``steps`` projected steepest-ascent steps on ``loss_fn(model(x'))`` from ``start`` (model in eval mode).

    A ``DistributedDataParallel`` model is attacked through its local module: input
    gradients need no gradient synchronisation (and must not start one).
    """
    model = _local(model)
    alpha = (rel_step_size * threat.radius(x)).reshape(-1, *([1] * (x.dim() - 1)))
    x_adv = start.detach()
    with _eval_mode(model):
        for _ in range(steps):
            _, grad, _ = input_gradient(model, x_adv, loss_fn)
            x_adv = threat.project(x_adv + alpha * threat.step(grad, x_adv), x)
    return x_adv.detach()


class _Warmup:
    """eps grows linearly from ~0 to its value over the first ``warmup`` fraction of the training steps.

    A curriculum against the plateau of adversarial training at large eps from
    scratch (the loss stays at log(classes) for many steps at MNIST eps 0.3); the
    training loop calls :meth:`at_step` before every step, so resuming repeats it.
    """

    def __init__(self, threat: Threat, warmup: float):
        if not 0 <= warmup <= 1:
            raise ValueError(f"warmup must be a fraction of training in [0, 1], got {warmup!r}")
        self.threat, self.warmup, self.current = threat, float(warmup), threat

    def at_step(self, step: int, total: int) -> None:
        ramp = 1.0 if self.warmup == 0 else min(1.0, (step + 1) / (self.warmup * total))
        self.current = self.threat if ramp >= 1 else self.threat.with_eps(self.threat.eps * ramp)


class PGDTraining(_Warmup):
    """Madry et al. (2018): cross-entropy at PGD-``steps`` examples (random start, step ``rel_step_size`` * eps).

    Args: ``eps`` (Linf radius) or ``threat`` ("l2:1.0" or a Threat), ``steps``, ``rel_step_size``
    (default 2.5 / steps, as in :class:`advx.attacks.PGD`), ``warmup`` (see :class:`_Warmup`).
    """

    adversarial = True  #: the returned logits are on adversarial examples

    def __init__(self, eps: float | None = None, steps: int = 10, rel_step_size: float | None = None,
                 threat: Threat | str | None = None, warmup: float = 0.0):
        _Warmup.__init__(self, _threat(threat, eps), warmup)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        self.steps = steps
        self.rel_step_size = 2.5 / steps if rel_step_size is None else float(rel_step_size)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        threat = self.current
        start = threat.random_start(x, generator)
        x_adv = inner_maximize(model, x, lambda z: F.cross_entropy(z, y, reduction="none"), threat,
                               self.steps, self.rel_step_size, start)
        logits = model(x_adv)
        return F.cross_entropy(logits, y), logits


class FGSMRSTraining(PGDTraining):
    """Wong et al. (2020): one step of ``rel_step_size`` * eps (default 1.25) from a uniform random start."""

    def __init__(self, eps: float | None = None, rel_step_size: float = 1.25, threat: Threat | str | None = None,
                 warmup: float = 0.0):
        super().__init__(eps, steps=1, rel_step_size=rel_step_size, threat=threat, warmup=warmup)


class TRADES(_Warmup):
    """Zhang et al. (2019): CE(f(x), y) + beta * KL(f(x) || f(x')), x' = PGD-``steps`` on that KL."""

    adversarial = True  #: the returned logits are f(x'), on the adversarial examples

    def __init__(self, eps: float | None = None, beta: float = 6.0, steps: int = 10,
                 rel_step_size: float | None = None, threat: Threat | str | None = None, warmup: float = 0.0):
        _Warmup.__init__(self, _threat(threat, eps), warmup)
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        self.beta, self.steps = float(beta), steps
        self.rel_step_size = 2.5 / steps if rel_step_size is None else float(rel_step_size)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        local = _local(model)
        with torch.no_grad(), _eval_mode(local):
            p_clean = F.softmax(local(x), dim=1)
        threat = self.current
        noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
        start = threat.project(x + 0.001 * noise, x)

        def kl(z: Tensor) -> Tensor:
            return F.kl_div(F.log_softmax(z, dim=1), p_clean, reduction="none").sum(1)

        x_adv = inner_maximize(model, x, kl, threat, self.steps, self.rel_step_size, start)
        logits, logits_adv = model(torch.cat([x, x_adv])).split(len(x))  # one forward (one DDP reduction)
        robust = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1), reduction="batchmean")
        return F.cross_entropy(logits, y) + self.beta * robust, logits_adv


class NoiseTraining:
    """Gaussian augmentation (Cohen et al. 2019, https://arxiv.org/abs/1902.02918): CE at x + N(0, sigma^2 I)."""

    def __init__(self, sigma: float = 0.25):
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        self.sigma = float(sigma)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
        logits = model(x + self.sigma * noise)
        return F.cross_entropy(logits, y), logits


def pgd_accuracy(model: nn.Module, x: Tensor, y: Tensor, threat: Threat, steps: int, seed: int = 0,
                 batch_size: int = 500) -> float:
    """Accuracy under PGD-``steps`` (cross-entropy, step 2.5 eps / steps, seeded random start), in eval mode."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    generator = torch.Generator(device=device).manual_seed(seed)
    correct = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        x_adv = inner_maximize(model, xb, lambda z, yb=yb: F.cross_entropy(z, yb, reduction="none"), threat,
                               steps, 2.5 / steps, threat.random_start(xb, generator))
        with torch.no_grad(), _eval_mode(model):
            correct += int((model(x_adv).argmax(1) == yb).sum())
    return correct / max(len(x), 1)


class RobustAccuracy:
    """An ``on_epoch`` callback that measures PGD-``steps`` accuracy on fixed test points after each epoch
    and records it as ``stats.extra["test_robust_accuracy"]`` (it never stops training)."""

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, eps: float | None = None, steps: int = 10,
                 threat: Threat | str | None = None, seed: int = 0):
        self.model, self.x, self.y = model, x, y
        self.threat = _threat(threat, eps)
        self.steps, self.seed = positive_int("steps", steps), seed

    def __call__(self, stats: EpochStats) -> bool:
        stats.extra["test_robust_accuracy"] = pgd_accuracy(self.model, self.x, self.y, self.threat, self.steps,
                                                           self.seed)
        return False


class OverfitGuard:
    """Early stopping against catastrophic overfitting (Wong et al. 2020, section 5.3): an ``on_epoch`` callback.

    After each epoch, PGD-``steps`` accuracy on a fixed held-out batch ``(x, y)``
    (seeded random start); if it falls more than ``max_drop`` below the previous
    epoch's, the previous epoch's weights are put back and training stops (the
    callback returns True). ``history`` holds (epoch, robust accuracy).
    """

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, eps: float | None = None, steps: int = 5,
                 max_drop: float = 0.2, threat: Threat | str | None = None, seed: int = 0):
        self.model, self.x, self.y = model, x, y
        self.threat = _threat(threat, eps)
        self.steps, self.max_drop, self.seed = steps, float(max_drop), seed
        self.history: list[tuple[int, float]] = []
        self.last_good: dict[str, Tensor] | None = None
        self.stopped_at: int | None = None

    def robust_accuracy(self) -> float:
        return pgd_accuracy(self.model, self.x, self.y, self.threat, self.steps, self.seed)

    def __call__(self, stats: EpochStats) -> bool:
        acc = self.robust_accuracy()
        stats.extra["guard_robust_accuracy"] = acc
        previous = self.history[-1][1] if self.history else None
        self.history.append((stats.epoch, acc))
        if previous is not None and acc < previous - self.max_drop:
            log.warning("catastrophic overfitting: PGD accuracy on the guard batch fell from %.3f to %.3f after "
                        "epoch %d; restoring the previous epoch's weights and stopping", previous, acc, stats.epoch)
            if self.last_good is not None:
                self.model.load_state_dict(self.last_good)
            self.stopped_at = stats.epoch
            return True
        self.last_good = copy.deepcopy(self.model.state_dict())
        return False


register_defense("pgd", PGDTraining)
register_defense("fgsm-rs", FGSMRSTraining)
register_defense("trades", TRADES)
register_defense("noise", NoiseTraining)
