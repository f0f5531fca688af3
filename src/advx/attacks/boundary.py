"""The Boundary Attack: decision-based random walk along the decision boundary (L2).

Brendel, Rauber & Bethge, "Decision-Based Adversarial Attacks: Reliable
Attacks Against Black-Box Machine Learning Models", ICLR 2018
(https://arxiv.org/abs/1712.04248).

Only the top label is read. From an adversarial start, each step (Sec. 3.1):

1. orthogonal step: a Gaussian draw, scaled to ``spherical_step * d`` where
   d = ||x_adv - x||, made orthogonal to x - x_adv and put back on the sphere of
   radius d around x (so the distance to x is unchanged), then into the box;
2. source step: towards x by ``source_step * d``.

The candidate replaces x_adv if it is adversarial. Both step sizes adapt
(Sec. 3.2) every ``adapt_every`` steps from per-sample success rates: the
spherical candidate alone (kept near 50%) and the full candidate among the
spherical successes (kept between 20% and 50%), multiplying or dividing by
``step_adaptation``. Each step spends 2 queries (both candidates are judged,
as the adaptation needs). The start is found as in HopSkipJump (uniform noise,
else a suitable other sample of the batch) and moved to the boundary by
binary search.

Query budget: a hard per-sample limit for the whole call, ``result.queries <=
queries`` (:meth:`run` spends at most ``queries - 2``, the contract's 2 aside). Minimum-norm: the base
class projects the result into the threat's ball (give a large eps to read
minimal distances, or ``early_stop=True`` to stop once within eps).
"""

from __future__ import annotations

import torch
from torch import Tensor

from advx.attacks.base import CONTRACT_QUERIES, Attack, AttackContext, in_range, positive_int, query_budget
from advx.attacks.hopskipjump import boundary_search, decision, find_starts, settle
from advx.attacks.registry import register
from advx.threat import Threat, per_sample

__all__ = ["Boundary"]


def _norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1)


@register("boundary", threats=("l2",), kind="decision-based", budget=("queries",),
          summary="label-only random walk along the decision boundary (Brendel et al. 2018, arXiv:1712.04248)")
class Boundary(Attack):
    """Boundary Attack (Brendel et al. 2018): decision-based, L2, minimum-norm.

    Args:
        threat: ``L2(eps)``; eps bounds the returned point.
        queries: forwards per sample for the whole call (a hard budget, the contract's 2 included).
        spherical_step, source_step: initial relative step sizes.
        step_adaptation: factor by which step sizes grow or shrink.
        adapt_every: steps between adaptations of the step sizes.
        init_tries: uniform-noise draws to find an adversarial start.
        early_stop: stop a sample once it is adversarial within eps.
    """

    minimum_norm = True

    def __init__(self, threat: Threat, queries: int = 5000, spherical_step: float = 1e-2, source_step: float = 1e-2,
                 step_adaptation: float = 1.5, adapt_every: int = 10, init_tries: int = 20, early_stop: bool = False,
                 seed: int = 0):
        super().__init__(threat, seed)
        self.queries, self.adapt_every = query_budget(queries), positive_int("adapt_every", adapt_every)
        self.init_tries = positive_int("init_tries", init_tries)
        self.spherical_step = in_range("spherical_step", spherical_step, 0, 1, low_open=True, high_open=True)
        self.source_step = in_range("source_step", source_step, 0, 1, low_open=True, high_open=True)
        self.step_adaptation = in_range("step_adaptation", step_adaptation, 1, low_open=True)
        self.early_stop = bool(early_stop)

    def run(self, ctx: AttackContext) -> Tensor:
        threat, x, g = self.threat, ctx.x, ctx.generator
        out = x.clone()
        idx = (~ctx.initial_success).nonzero().squeeze(1)
        budget = torch.full((len(idx),), self.queries - CONTRACT_QUERIES, dtype=torch.long, device=x.device)
        start, found, used = find_starts(ctx, threat, idx, self.init_tries, budget)
        keep = found.nonzero().squeeze(1)
        idx, start, used, budget = idx[keep], start[keep], used[keep], budget[keep]
        if len(idx) == 0:
            return out
        x0 = x[idx]
        thr = torch.full((len(idx),), 1e-3, dtype=x.dtype, device=x.device)
        xa, q = boundary_search(ctx, threat, idx, x0, start, thr, budget - used)
        used += q
        n = len(idx)
        sph = torch.full((n,), self.spherical_step, dtype=x.dtype, device=x.device)
        src = torch.full((n,), self.source_step, dtype=x.dtype, device=x.device)
        sph_ok = torch.zeros(n, device=x.device)
        src_ok = torch.zeros(n, device=x.device)
        tried = torch.zeros(n, device=x.device)
        radius = threat.radius(x0)
        while True:
            act = (used + 2 <= budget).nonzero().squeeze(1)
            if self.early_stop and len(act):
                act = act[threat.distance(xa[act], x0[act]) > radius[act]]
            if len(act) == 0:
                break
            xs, xc = x0[act], xa[act]
            to_src = xs - xc
            d = _norm(to_src)
            # 1. orthogonal step on the sphere of radius d around x
            eta = torch.randn(xc.shape, generator=g, device=g.device).to(xc)
            eta = eta * per_sample(sph[act] * d / _norm(eta).clamp_min(1e-12), eta)
            unit = to_src / per_sample(d.clamp_min(1e-12), to_src)
            eta = eta - unit * per_sample((eta * unit).flatten(1).sum(1), eta)
            on_sphere = xc + eta
            back = on_sphere - xs
            spherical = settle(threat, xs + back * per_sample(d / _norm(back).clamp_min(1e-12), back), xs)
            # 2. source step towards x
            toward = xs - spherical
            cand = settle(threat, spherical + toward * per_sample(src[act] * d / _norm(toward).clamp_min(1e-12), toward), xs)
            both = decision(ctx, torch.cat([spherical, cand]), torch.cat([idx[act], idx[act]]))
            used[act] += 2
            adv_sph, adv = both[: len(act)], both[len(act):]
            closer = adv & (_norm(cand - xs) < d)
            xa[act[closer]] = cand[closer]
            sph_ok[act] += adv_sph.float()
            src_ok[act] += (adv & adv_sph).float()
            tried[act] += 1
            self._adapt(act[tried[act] >= self.adapt_every], sph, src, sph_ok, src_ok, tried)
        out[idx] = xa
        return out

    def _adapt(self, rows: Tensor, sph: Tensor, src: Tensor, sph_ok: Tensor, src_ok: Tensor, tried: Tensor) -> None:
        if len(rows) == 0:
            return
        f = self.step_adaptation
        p_sph = sph_ok[rows] / tried[rows]
        p_src = src_ok[rows] / sph_ok[rows].clamp_min(1)
        sph[rows] *= torch.where(p_sph > 0.5, f, torch.where(p_sph < 0.2, 1 / f, 1.0))
        has = sph_ok[rows] > 0
        src[rows] *= torch.where(has & (p_src > 0.5), f, torch.where(has & (p_src < 0.2), 1 / f, 1.0))
        src[rows] = src[rows].clamp(max=0.5)
        sph[rows] = sph[rows].clamp(max=1.0)
        sph_ok[rows], src_ok[rows], tried[rows] = 0, 0, 0
