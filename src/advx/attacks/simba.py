"""SimBA: Simple Black-box Attack, pixel or DCT basis.

Guo, Gardner, You, Wilson & Weinberger, "Simple Black-box Adversarial
Attacks", ICML 2019 (https://arxiv.org/abs/1905.07121).

Algorithm 1: pick an orthonormal direction q not used before (a random order
over the basis); try x - eps q, and if the score does not improve, x + eps q;
keep the first that improves. The score is the probability of the true class
(to lower; of the target class to raise, if targeted), read from the model's
outputs only. Each direction costs one or two queries; a sample stops when it
is adversarial or its budget is spent.

* ``basis="pixel"``: the Cartesian basis (SimBA). With a ``Linf(eps)`` threat
  and step eps, every coordinate moves at most once by eps, so the walk stays
  inside the ball exactly.
* ``basis="dct"``: the orthonormal 2-D DCT-II basis per channel (SimBA-DCT),
  low frequencies first: directions are visited band by band (max(u, v)
  rising), in random order within a band -- the paper's "low frequency first"
  ordering, expanded one band at a time.

Every candidate is projected into the threat, so with ``L2(eps)`` the walk
stays in the ball. Inputs are read as (N, C, H, W); (N, C, T) as (N, C, 1, T)
and (N, D) as (N, 1, 1, D). Queries per sample: at most ``queries`` in all (a hard
budget: the contract's 2 and the start point included).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from advx.attacks.base import CONTRACT_QUERIES, Attack, AttackContext, as_image, in_range, query_budget
from advx.attacks.registry import register
from advx.threat import Threat

__all__ = ["SimBA", "dct_matrix"]


def dct_matrix(n: int, dtype=torch.float32, device=None) -> Tensor:
    """Orthonormal DCT-II matrix: row k is the k-th basis vector of length n."""
    i = torch.arange(n, dtype=torch.float64)
    k = i[:, None]
    m = torch.cos(math.pi * (2 * i[None, :] + 1) * k / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m.to(dtype=dtype, device=device)


@register("simba", threats=("linf", "l2"), kind="score-based", budget=("queries",),
          summary="simple black-box attack, pixel or DCT directions (Guo et al. 2019, arXiv:1905.07121)")
class SimBA(Attack):
    """Simple Black-box Attack (Guo et al. 2019), score-based.

    Args:
        threat: ``Linf(eps)`` or ``L2(eps)``.
        queries: forwards per sample for the whole call (a hard budget: the contract's 2 and the start included).
        basis: "pixel" (SimBA) or "dct" (SimBA-DCT); default pixel for Linf (a DCT step of
            L2 size eps moves each coordinate far less than eps), dct for L2.
        step: size of each move along a direction; default the Linf radius, or 0.2 for L2 (the paper's value).
    """

    def __init__(self, threat: Threat, queries: int = 5000, basis: str | None = None, step: float | None = None,
                 seed: int = 0):
        super().__init__(threat, seed)
        if basis is None:
            basis = "pixel" if threat.p == math.inf else "dct"
        if basis not in ("pixel", "dct"):
            raise ValueError(f"basis must be 'pixel' or 'dct', got {basis!r}")
        self.queries, self.basis = query_budget(queries), basis
        self.step = None if step is None else in_range("step", step, 0, low_open=True)

    def _score(self, logits: Tensor, rows: Tensor, ctx: AttackContext) -> Tensor:
        """Higher is better for the attacker: -p(y) untargeted, p(target) targeted."""
        y, target = ctx.labels(rows)
        p = logits.softmax(dim=1)
        return p.gather(1, target[:, None]).squeeze(1) if target is not None else -p.gather(1, y[:, None]).squeeze(1)

    def _order(self, n: int, c: int, h: int, w: int, g: torch.Generator, device) -> Tensor:
        """Per-sample visiting order of the c*h*w directions (low DCT bands first)."""
        keys = torch.rand((n, c * h * w), generator=g, device=g.device).to(device)
        if self.basis == "dct":
            u = torch.arange(h, device=device)[:, None].expand(h, w)
            v = torch.arange(w, device=device)[None, :].expand(h, w)
            band = torch.maximum(u, v).reshape(1, 1, h * w).expand(1, c, h * w).reshape(1, -1)
            keys = keys + band.to(keys.dtype)
        return keys.argsort(dim=1)

    def _direction(self, k: Tensor, shape: tuple[int, int, int, int], mats: tuple[Tensor, Tensor] | None) -> Tensor:
        n, c, h, w = shape
        ch, rest = k // (h * w), k % (h * w)
        u, v = rest // w, rest % w
        q = torch.zeros(shape, dtype=mats[0].dtype if mats else torch.float32, device=k.device)
        rows = torch.arange(n, device=k.device)
        if mats is None:
            q[rows, ch, u, v] = 1
        else:
            q[rows, ch] = mats[0][u][:, :, None] * mats[1][v][:, None, :]
        return q

    def run(self, ctx: AttackContext) -> Tensor:
        threat, x = self.threat, ctx.x
        out = x.clone()
        idx = (~ctx.initial_success).nonzero().squeeze(1)
        if len(idx) == 0:
            return out
        x0 = x[idx]
        img = as_image(x0)
        shape = tuple(img.shape)
        n, c, h, w = shape
        eps = self.step if self.step is not None else (threat.eps if threat.p == math.inf else 0.2)
        mats = (dct_matrix(h, x.dtype, x.device), dct_matrix(w, x.dtype, x.device)) if self.basis == "dct" else None
        order = self._order(n, c, h, w, ctx.generator, x.device)
        cur = x0.clone()
        score = self._score(ctx.forward(cur, idx), idx, ctx)
        used = torch.ones(n, dtype=torch.long, device=x.device)
        done = torch.zeros(n, dtype=torch.bool, device=x.device)
        budget = self.queries - CONTRACT_QUERIES
        for k in range(c * h * w):
            act = (~done & (used < budget)).nonzero().squeeze(1)
            if len(act) == 0:
                break
            q = self._direction(order[act, k], (len(act), c, h, w), mats).to(x.dtype).reshape(cur[act].shape)
            pending = torch.ones(len(act), dtype=torch.bool, device=x.device)
            for sign in (-1.0, 1.0):
                rows = (pending & (used[act] < budget)).nonzero().squeeze(1)
                if len(rows) == 0:
                    break
                r = act[rows]
                cand = threat.project(cur[r] + sign * eps * q[rows], x0[r])
                logits = ctx.forward(cand, idx[r])
                used[r] += 1
                s = self._score(logits, idx[r], ctx)
                better = s > score[r]
                cur[r[better]], score[r[better]] = cand[better], s[better]
                done[r] |= better & ctx.adversarial(logits, idx[r])
                pending[rows[better]] = False
        out[idx] = cur
        return out
