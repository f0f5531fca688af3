"""MALT: APGD-T on the target classes a first-order model says are nearest.

Melamed, Yehudai & Shamir, "MALT Powers Up Adversarial Attacks", NeurIPS 2024
(https://arxiv.org/abs/2407.02240). AutoAttack's APGD-T attacks the classes
with the highest clean logits, one after the other (9 on CIFAR-10). MALT
("mesoscopic almost linearity targeting") ranks the candidates instead by the
distance to their decision boundary that a linear model at x would give:

    score_t(x) = (z_y(x) - z_t(x)) / || grad_x (z_t - z_y)(x) ||_*

(the dual norm of the threat's norm, so the score is the radius at which the
linearised logit difference changes sign), smallest first, and runs targeted
APGD on the DLR loss against the best few only. The paper's observation is that
networks are almost linear at the scale of the attack radius ("mesoscopic"),
so this ranking puts the class a full APGD-T would break first at the top, and
two or three targets match nine ranked by confidence.

Here: the candidates are the ``candidates`` classes with the highest clean
logits (all other classes by default), each costs one forward and one backward
per point to score, and the ``n_target_classes`` best are attacked in score
order, each only on points still robust (as APGD-T). Targeted calls
(``target=``) run plain targeted APGD.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from advx.attacks.apgd import APGDT
from advx.attacks.base import AttackContext, BestRuns, best_of_restarts, positive_int
from advx.attacks.losses import LossFn
from advx.attacks.registry import register
from advx.threat import Threat

__all__ = ["MALT", "malt_targets"]

#: dual norms by the threat's norm name (the ranking's denominator)
_DUAL = {"linf": lambda g: g.abs().sum(1), "l2": lambda g: g.norm(dim=1), "l1": lambda g: g.abs().amax(1)}


def _dual_norm(threat: Threat, grad: Tensor) -> Tensor:
    own = getattr(threat, "dual_norm", None)
    if callable(own):
        return own(grad)
    return _DUAL.get(threat.norm_name, _DUAL["l2"])(grad.reshape(len(grad), -1))


def malt_targets(ctx: AttackContext, threat: Threat, k: int, candidates: int | None = None) -> Iterator[Tensor]:
    """The (N,) target classes of MALT rank 1..k for the rows not adversarial at the clean input.

    Costs one counted forward (the ranking by logit) plus one forward and one backward per candidate.
    """
    x, y = ctx.x, ctx.y
    todo = (~ctx.initial_success).nonzero().squeeze(1)
    if len(todo) == 0:
        return
    c = ctx.num_classes - 1
    m = c if candidates is None else min(candidates, c)
    logits = ctx.forward(x[todo], todo)
    order = logits.argsort(dim=1, descending=True)
    cand = order[order != y[todo, None]].reshape(len(todo), -1)[:, :m]  # (T, m) by clean logit
    scores = torch.empty(len(todo), m, dtype=x.dtype, device=x.device)
    yt = y[todo]
    for j in range(m):
        t = cand[:, j]

        def diff(z: Tensor, t=t) -> Tensor:
            return z.gather(1, t[:, None]).squeeze(1) - z.gather(1, yt[:, None]).squeeze(1)

        loss, grad, _ = ctx.gradient(x[todo], diff, todo)
        dual = _dual_norm(threat, grad).to(x.dtype)
        scores[:, j] = torch.where(dual > 0, -loss.to(x.dtype) / dual.clamp_min(1e-30),
                                   torch.full_like(dual, float("inf")))
    rank = scores.argsort(dim=1, stable=True)  # ties keep the logit order
    ranked = torch.zeros(len(x), m, dtype=torch.long, device=x.device)
    ranked[todo] = cand.gather(1, rank)
    for r in range(min(k, m)):
        yield ranked[:, r]


@register("malt", threats=("linf", "l2", "l1", "db"), kind="gradient", budget=("steps", "restarts"),
          summary="APGD-T on the targets a linearisation ranks nearest (Melamed et al. 2024, arXiv:2407.02240)")
class MALT(APGDT):
    """APGD-T on the MALT-ranked targets (Melamed, Yehudai & Shamir 2024).

    Args:
        threat: as APGD (Linf, L2, L1).
        steps: APGD iterations per target and restart.
        n_target_classes: targets attacked, best MALT score first (the paper: a few suffice).
        candidates: classes scored (those with the highest clean logits); None: all other classes.
        restarts, loss, rho, momentum, seed: as :class:`~advx.attacks.apgd.APGDT`.
    """

    def __init__(self, threat: Threat, steps: int = 100, n_target_classes: int = 3, candidates: int | None = None,
                 restarts: int = 1, loss: str | LossFn = "dlr", rho: float = 0.75, momentum: float = 0.75,
                 seed: int = 0):
        super().__init__(threat, steps=steps, n_target_classes=n_target_classes, restarts=restarts, loss=loss,
                         rho=rho, momentum=momentum, seed=seed)
        self.candidates = None if candidates is None else positive_int("candidates", candidates)

    def run(self, ctx: AttackContext) -> Tensor:
        if ctx.targeted:
            return super().run(ctx)
        best = BestRuns.start(ctx)
        for t in malt_targets(ctx, self.threat, self.n_target_classes, self.candidates):
            best_of_restarts(ctx, self.restarts, lambda idx, t=t: self._one_run(ctx, idx, t[idx]), best)
        return best.x
