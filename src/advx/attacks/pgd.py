"""Projected Gradient Descent and the Basic Iterative Method.

Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models
Resistant to Adversarial Attacks", ICLR 2018 (https://arxiv.org/abs/1706.06083):
from a uniform random point of the ball, repeat
``x <- project(x + alpha * step(grad loss))``; several restarts, keeping per
sample the first that succeeds (or else the one with the highest loss).

* BIM (Kurakin, Goodfellow & Bengio 2017, https://arxiv.org/abs/1607.02533) is
  PGD started at x with step 1.25 * eps / steps.
* ``momentum > 0`` is MI-FGSM (Dong et al. 2018, https://arxiv.org/abs/1710.06081):
  the step follows g <- mu * g + grad / ||grad||_1.
* ``loss="margin"`` is the C&W margin loss (Carlini & Wagner 2017); "dlr" is the
  loss of Croce & Hein (2020).
"""

from __future__ import annotations

import torch
from torch import Tensor

from advx.attacks.base import Attack, AttackContext, best_of_restarts, in_range, positive_int
from advx.attacks.losses import LossFn, get_loss
from advx.attacks.registry import register
from advx.threat import Threat, per_sample

__all__ = ["PGD", "BIM"]


@register("pgd", threats=("linf", "l2", "l1", "l0", "db"), kind="gradient", budget=("steps", "restarts"),
          summary="projected gradient descent from a random start (Madry et al. 2018, arXiv:1706.06083)")
class PGD(Attack):
    """Projected gradient ascent on a loss inside the threat (Madry et al. 2018).

    Args:
        threat: where the adversary may move, e.g. ``Linf(8/255)``.
        steps: gradient steps per restart.
        restarts: independent runs; each later one only on samples not yet fooled.
        rel_step_size: step size as a fraction of the radius (default 2.5 / steps).
        random_start: start at a uniform random point of the ball (else at x).
        loss: "ce", "margin" (C&W), "dlr", or a callable(logits, y, target).
        momentum: MI-FGSM decay factor mu (0 disables momentum).
        early_stop: stop working on a sample as soon as it is adversarial.
    """

    def __init__(
        self,
        threat: Threat,
        steps: int = 40,
        restarts: int = 1,
        rel_step_size: float | None = None,
        random_start: bool = True,
        loss: str | LossFn = "ce",
        momentum: float = 0.0,
        early_stop: bool = True,
        seed: int = 0,
    ):
        super().__init__(threat, seed)
        self.steps, self.restarts = positive_int("steps", steps), positive_int("restarts", restarts)
        self.rel_step_size = 2.5 / self.steps if rel_step_size is None else \
            in_range("rel_step_size", rel_step_size, 0, low_open=True)
        self.random_start = bool(random_start)
        self.loss = get_loss(loss)
        self.momentum = in_range("momentum", momentum, 0)
        self.early_stop = bool(early_stop)

    def run(self, ctx: AttackContext) -> Tensor:
        return best_of_restarts(ctx, self.restarts, lambda idx: self._one_run(ctx, idx))

    def _gradient(self, ctx: AttackContext, x: Tensor, loss_fn, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(loss, gradient, logits) at ``x``: the model's own gradient; score-based
        subclasses (:class:`advx.attacks.spsa.EstimatedPGD`) estimate it instead."""
        return ctx.gradient(x, loss_fn, idx)

    def _one_run(self, ctx: AttackContext, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """PGD on rows ``idx``; returns their chosen points, losses and success."""
        threat, x0 = self.threat, ctx.x[idx]
        y, target = ctx.labels(idx)
        alpha = per_sample(self.rel_step_size * threat.radius(x0), x0)
        x_adv = threat.random_start(x0, ctx.generator) if self.random_start else x0.clone()
        x_out = x0.clone()
        adv_out = torch.zeros(len(idx), dtype=torch.bool, device=x0.device)
        g_mom = torch.zeros_like(x0) if self.momentum else None
        act = torch.arange(len(idx), device=x0.device)  # rows of idx still being attacked

        def loss_of(rows):
            ya, ta = y[rows], None if target is None else target[rows]
            return lambda z: self.loss(z, ya, ta)

        for _ in range(self.steps):
            _, grad, logits = self._gradient(ctx, x_adv, loss_of(act), idx[act])
            adv = ctx.adversarial(logits, idx[act])  # judged at the current iterate
            if bool(adv.any()):
                x_out[act[adv]] = x_adv[adv]
                adv_out[act[adv]] = True
                if self.early_stop:
                    act, x_adv, grad = act[~adv], x_adv[~adv], grad[~adv]
                    g_mom = None if g_mom is None else g_mom[~adv]
                    if len(act) == 0:
                        break
            if g_mom is not None:
                norm = grad.abs().reshape(len(grad), -1).sum(1).clamp_min(1e-12)
                g_mom = self.momentum * g_mom + grad / per_sample(norm, grad)
                grad = g_mom
            x_adv = threat.project(x_adv + alpha[act] * threat.step(grad, x_adv), x0[act])

        loss_out = torch.full((len(idx),), torch.inf, dtype=x0.dtype, device=x0.device)
        if len(act):  # judge the final iterate of the rows still running
            logits = ctx.forward(x_adv, idx[act])
            adv = ctx.adversarial(logits, idx[act])
            take = adv | ~adv_out[act]  # keep an earlier success over a failed final point
            x_out[act[take]] = x_adv[take]
            adv_out[act] |= adv
            loss_out[act] = loss_of(act)(logits)
        return x_out, loss_out, adv_out


@register("bim", threats=("linf", "l2", "l1", "db"), kind="gradient", budget=("steps",),
          summary="basic iterative method: PGD from x, no restarts (Kurakin et al. 2017, arXiv:1607.02533)")
class BIM(PGD):
    """Basic Iterative Method (Kurakin et al. 2017): PGD from x, step 1.25 * eps / steps."""

    def __init__(self, threat: Threat, steps: int = 10, loss: str | LossFn = "ce", early_stop: bool = True, seed: int = 0):
        steps = positive_int("steps", steps)
        super().__init__(threat, steps=steps, restarts=1, rel_step_size=1.25 / steps,
                         random_start=False, loss=loss, early_stop=early_stop, seed=seed)
