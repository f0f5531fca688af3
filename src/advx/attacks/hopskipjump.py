"""HopSkipJump: a decision-based minimum-norm attack (L2 and Linf).

Chen, Jordan & Wainwright, "HopSkipJumpAttack: A Query-Efficient
Decision-Based Attack", IEEE S&P 2020 (https://arxiv.org/abs/1904.02144).

Only the top label is used (``argmax`` of what the model returns; the
scores are never read), so the attack runs unchanged on
:class:`advx.model.LabelOnly`. From an adversarial start (Alg. 1):

1. binary search between x and the adversarial point to the boundary
   (threshold theta = d^(-3/2) for L2, d^(-2) for Linf);
2. estimate the gradient direction at the boundary point x_t from the labels
   of B_t = B_0 sqrt(t) random points x_t + delta u_b, with a baseline
   (Monte-Carlo estimate with variance reduction, Eq. 16), delta_t =
   sqrt(d) theta ||x_t - x|| (L2) or d theta ||x_t - x||_inf (Linf);
3. step along it (L2: v / ||v||; Linf: sign(v)) with size ||x_t - x|| / sqrt(t),
   halved until the point is adversarial (geometric progression); go to 1.

The start is uniform noise in the bounds (``init_tries`` draws), else one of
the closest other samples of the batch whose true label suits (another class;
the target class if targeted), checked with one query each: that is how a
targeted attack finds a start.

Query budget: ``queries`` is a hard per-sample limit for the whole call,
``result.queries <= queries`` (the contract's clean forward and final judgement
included, so :meth:`run` spends at most ``queries - 2``). The result is
the closest adversarial point found; the base class projects it into the
threat's ball, so give a large eps to read minimal distances, or a finite eps
with ``early_stop=True`` to stop each sample once it is adversarial within eps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from advx.attacks.base import CONTRACT_QUERIES, Attack, AttackContext, in_range, positive_int, query_budget
from advx.attacks.registry import register
from advx.threat import Threat, per_sample

__all__ = ["HopSkipJump", "decision", "find_starts", "boundary_search", "settle"]


def decision(ctx: AttackContext, z: Tensor, rows: Tensor, batch_size: int = 2048) -> Tensor:
    """Is ``z`` adversarial for the samples ``rows`` (full-batch indices, one per row of z)?

    Reads only the top label; each row of ``z`` is one counted query.
    """
    out = []
    for s in range(0, len(z), batch_size):
        r = rows[s:s + batch_size]
        out.append(ctx.adversarial(ctx.forward(z[s:s + batch_size], r), r))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=z.device)


def find_starts(ctx: AttackContext, threat: Threat, idx: Tensor, tries: int, budget: Tensor,
                candidates: int = 3) -> tuple[Tensor, Tensor, Tensor]:
    """Adversarial starting points for rows ``idx``: uniform noise, else other batch samples.

    Noise: up to ``tries`` uniform draws in the bounds. Then, for rows still
    without a start, the ``candidates`` closest other samples of the batch whose
    true label suits (another class; the target class if targeted), each checked
    with one query. Returns (points, found, queries used) for the rows of ``idx``.
    """
    x0 = ctx.x[idx]
    start, found = x0.clone(), torch.zeros(len(idx), dtype=torch.bool, device=x0.device)
    used = torch.zeros(len(idx), dtype=torch.long, device=x0.device)
    lo, hi = threat.box(x0)
    g = ctx.generator
    for _ in range(tries):
        todo = (~found & (used < budget)).nonzero().squeeze(1)
        if len(todo) == 0:
            break
        u = torch.rand((len(todo), *x0.shape[1:]), generator=g, device=g.device).to(x0)
        noise = lo + (hi - lo) * u
        adv = decision(ctx, noise, idx[todo])
        used[todo] += 1
        start[todo[adv]], found[todo[adv]] = noise[adv], True
    todo = (~found).nonzero().squeeze(1)
    if len(todo) == 0 or len(ctx.x) < 2:
        return start, found, used
    y, t = ctx.labels(idx[todo])
    suits = (ctx.y[None, :] == t[:, None]) if t is not None else (ctx.y[None, :] != y[:, None])
    suits[torch.arange(len(todo)), idx[todo]] = False
    dist = torch.cdist(x0[todo].flatten(1), ctx.x.flatten(1)).masked_fill(~suits, torch.inf)
    order = dist.argsort(dim=1)
    for k in range(min(candidates, len(ctx.x) - 1)):
        j = order[:, k]
        ok = (~found[todo]) & (used[todo] < budget[todo]) & dist.gather(1, j[:, None]).squeeze(1).isfinite()
        rows = ok.nonzero().squeeze(1)
        if len(rows) == 0:
            break
        cand = ctx.x[j[rows]]
        adv = decision(ctx, cand, idx[todo[rows]])
        used[todo[rows]] += 1
        start[todo[rows[adv]]], found[todo[rows[adv]]] = cand[adv], True
    return start, found, used


def settle(threat: Threat, z: Tensor, x0: Tensor) -> Tensor:
    """``z`` as the attack contract will return it: projected with an unbounded radius.

    The contract projects x_adv into the threat; even inside the ball that
    rounds (x0 + (z - x0) is not always z), which can push a point that sits on
    the decision boundary back across it. Judging settled points avoids that.
    """
    return threat.with_eps(1e30).project(z, x0)


def boundary_search(ctx: AttackContext, threat: Threat, idx: Tensor, x0: Tensor, x_adv: Tensor, threshold: Tensor,
                    budget: Tensor) -> tuple[Tensor, Tensor]:
    """Binary search from adversarial ``x_adv`` towards ``x0`` (rows ``idx``) down to ``threshold``.

    L2: points (1 - a) x0 + a x_adv, a in [0, 1]; Linf: x0 + clip(x_adv - x0, -a, a),
    a in [0, ||x_adv - x0||_inf]. Returns the adversarial end and queries used.
    """
    linf = threat.p == math.inf
    d = x_adv - x0
    high = d.flatten(1).abs().amax(1) if linf else torch.ones(len(x0), dtype=x0.dtype, device=x0.device)
    low = torch.zeros_like(high)
    start_high = high.clone()
    used = torch.zeros(len(x0), dtype=torch.long, device=x0.device)

    def point(a: Tensor, rows: Tensor) -> Tensor:
        if linf:
            r = per_sample(a, d[rows])
            return settle(threat, x0[rows] + torch.maximum(torch.minimum(d[rows], r), -r), x0[rows])
        return settle(threat, x0[rows] + per_sample(a, d[rows]) * d[rows], x0[rows])

    while True:
        act = ((high - low > threshold) & (used < budget)).nonzero().squeeze(1)
        if len(act) == 0:
            break
        mid = (high[act] + low[act]) / 2
        adv = decision(ctx, point(mid, act), idx[act])
        used[act] += 1
        high[act[adv]], low[act[~adv]] = mid[adv], mid[~adv]
    rows = torch.arange(len(x0), device=x0.device)
    return torch.where(per_sample(high == start_high, x0), x_adv, point(high, rows)), used


@register("hopskipjump", threats=("l2", "linf"), kind="decision-based", budget=("queries",),
          summary="label-only boundary walk on estimated gradients (Chen et al. 2020, arXiv:1904.02144)")
class HopSkipJump(Attack):
    """HopSkipJumpAttack (Chen et al. 2020): decision-based, L2 or Linf, minimum-norm.

    Args:
        threat: ``L2(eps)`` or ``Linf(eps)``; eps bounds the returned point (see module doc).
        queries: forwards per sample for the whole call (a hard budget, the contract's 2 included).
        steps: at most this many iterations (each: estimate, step, binary search).
        init_evals, max_evals: B_0 and the cap on B_t = B_0 sqrt(t).
        gamma: sets theta = gamma / d^(3/2) (L2) or gamma / d^2 (Linf).
        init_tries: uniform-noise draws to find an adversarial start.
        early_stop: stop a sample once it is adversarial within eps.
        batch_size: most rows per model call.
    """

    minimum_norm = True

    def __init__(self, threat: Threat, queries: int = 5000, steps: int = 64, init_evals: int = 100,
                 max_evals: int = 10000, gamma: float = 1.0, init_tries: int = 20, early_stop: bool = False,
                 batch_size: int = 2048, seed: int = 0):
        super().__init__(threat, seed)
        self.queries, self.steps = query_budget(queries), positive_int("steps", steps)
        self.init_evals, self.max_evals = positive_int("init_evals", init_evals), positive_int("max_evals", max_evals)
        self.gamma = in_range("gamma", gamma, 0, low_open=True)
        self.init_tries, self.batch_size = positive_int("init_tries", init_tries), positive_int("batch_size", batch_size)
        self.early_stop = bool(early_stop)
        self.linf = threat.p == math.inf

    def run(self, ctx: AttackContext) -> Tensor:
        threat, x = self.threat, ctx.x
        out = x.clone()
        idx = (~ctx.initial_success).nonzero().squeeze(1)
        if len(idx) == 0:
            return out
        x0 = x[idx]
        d = x0[0].numel()
        theta = self.gamma / (d**2 if self.linf else d**1.5)
        budget = torch.full((len(idx),), self.queries - CONTRACT_QUERIES, dtype=torch.long, device=x.device)
        start, found, used = find_starts(ctx, threat, idx, self.init_tries, budget)
        keep = found.nonzero().squeeze(1)
        idx, x0, start, used, budget = idx[keep], x0[keep], start[keep], used[keep], budget[keep]
        if len(idx) == 0:
            return out

        def thr(xa: Tensor, xs: Tensor) -> Tensor:
            if self.linf:  # on the Linf radius: theta relative to the current distance
                return torch.clamp(threat.distance(xa, xs) * theta, max=theta)
            return torch.full((len(xa),), theta, dtype=x.dtype, device=x.device)

        xa, q = boundary_search(ctx, threat, idx, x0, start, thr(start, x0), budget - used)
        used += q
        dist = threat.distance(xa, x0)
        radius = threat.radius(x0)
        for t in range(1, self.steps + 1):
            act = (used < budget).nonzero().squeeze(1)
            if self.early_stop:
                act = act[dist[act] > radius[act]]
            if len(act) == 0:
                break
            xt, x0a = xa[act], x0[act]
            # 2. gradient direction from labels around the boundary point
            n_evals = min(int(self.init_evals * math.sqrt(t)), self.max_evals)
            per = torch.clamp(budget[act] - used[act] - 1, min=0, max=n_evals)
            scale = math.sqrt(d) * theta if not self.linf else d * theta
            delta = dist[act] * scale if t > 1 else torch.full_like(dist[act], 0.1)
            if t == 1:
                lo, hi = threat.box(x0a)
                delta = delta * (hi - lo).flatten().amax()
            v = self._estimate(ctx, idx[act], xt, per, delta)
            used[act] += per
            update = v.sign() if self.linf else v / per_sample(v.flatten(1).norm(dim=1).clamp_min(1e-12), v)
            # 3. geometric step size search
            step = dist[act] / math.sqrt(t)
            cand, ok = xt.clone(), torch.zeros(len(act), dtype=torch.bool, device=x.device)
            for _ in range(30):
                pend = (~ok & (used[act] < budget[act])).nonzero().squeeze(1)
                if len(pend) == 0:
                    break
                z = settle(threat, xt[pend] + per_sample(step[pend], update[pend]) * update[pend], x0a[pend])
                adv = decision(ctx, z, idx[act[pend]], self.batch_size)
                used[act[pend]] += 1
                cand[pend[adv]], ok[pend[adv]] = z[adv], True
                step[pend[~adv]] /= 2
            # 1. back to the boundary
            moved = ok.nonzero().squeeze(1)
            if len(moved):
                rows = act[moved]
                new, q = boundary_search(ctx, threat, idx[rows], x0[rows], cand[moved], thr(cand[moved], x0[rows]),
                                         budget[rows] - used[rows])
                used[rows] += q
                new_dist = threat.distance(new, x0[rows])
                better = new_dist < dist[rows]
                xa[rows[better]], dist[rows[better]] = new[better], new_dist[better]
        out[idx] = xa
        return out

    def _estimate(self, ctx: AttackContext, rows: Tensor, xt: Tensor, per: Tensor, delta: Tensor) -> Tensor:
        """Monte-Carlo gradient direction at boundary points ``xt`` with ``per[i]`` labels each (Eq. 16).

        Directions are drawn and judged ``batch_size`` at a time, so memory stays bounded:
        sum (phi - mean) u = sum phi u - mean sum u.
        """
        g = ctx.generator
        owner = torch.arange(len(xt), device=xt.device).repeat_interleave(per)
        phi_u, sum_u = torch.zeros_like(xt), torch.zeros_like(xt)
        phi_sum = torch.zeros(len(xt), dtype=xt.dtype, device=xt.device)
        for s in range(0, len(owner), self.batch_size):
            own = owner[s:s + self.batch_size]
            shape = (len(own), *xt.shape[1:])
            if self.linf:
                u = torch.rand(shape, generator=g, device=g.device).to(xt) * 2 - 1
            else:
                u = torch.randn(shape, generator=g, device=g.device).to(xt)
            u = u / per_sample(u.flatten(1).norm(dim=1).clamp_min(1e-12), u)
            base = xt[own]
            z = self.threat.clip(base + per_sample(delta[own], u) * u)
            u = (z - base) / per_sample(delta[own], u)  # the direction actually taken inside the box
            phi = decision(ctx, z, rows[own], self.batch_size).to(xt.dtype) * 2 - 1
            phi_u.index_add_(0, own, per_sample(phi, u) * u)
            sum_u.index_add_(0, own, u)
            phi_sum.index_add_(0, own, phi)
        n = per.clamp_min(1).to(xt.dtype)
        mean = phi_sum / n
        mean = torch.where(mean.abs() == 1, torch.zeros_like(mean), mean)  # no baseline when all labels agree
        return (phi_u - per_sample(mean, sum_u) * sum_u) / per_sample(n, phi_u)
