"""Square Attack: score-based random search in Linf and L2 balls.

Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient
black-box adversarial attack via random search", ECCV 2020
(https://arxiv.org/abs/1912.00049).

Only scores are used (``ctx.forward``; never a gradient). From an initial point
on the boundary of the ball, each iteration changes one random square window
covering a fraction ``p`` of the input and keeps the change if the loss grows:

* Linf (Alg. 2): the window is set to a random +-eps per channel; the start is
  vertical stripes of +-eps (one sign per channel and column).
* L2 (Alg. 3): the window gets a "meta pseudo-Gaussian" bump (two halves of
  nested squares with weights 1/(k+1)^2, opposite signs) plus its old content,
  and takes the mass of a second window, which is zeroed; the perturbation is
  then rescaled to norm eps. The start tiles such bumps over a grid of h/5 blocks.

``p`` starts at ``p_init`` and is halved at iterations
{10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000} of a 10 000-query run,
rescaled to the budget (iteration i of Q counts as i * 10000 / Q).

Inputs are read as (N, C, H, W); (N, C, T) signals as (N, C, 1, T) and flat
(N, D) vectors as (N, 1, 1, D), where windows become segments of p * T features.

Query accounting per sample: ``queries`` is a hard budget for the whole call,
``result.queries <= queries`` (and ``result.gradients == 0``): the attack
contract spends 2 (the clean forward and the final judgement of x_adv) and each
restart's search at most ``(queries - 2) // restarts`` forwards, the start point
included (as in the paper). The ``p`` schedule runs over ``queries // restarts``.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from advx.attacks.base import (
    CONTRACT_QUERIES,
    Attack,
    AttackContext,
    as_image,
    best_of_restarts,
    in_range,
    is_adversarial,
    positive_int,
    query_budget,
)
from advx.attacks.losses import LossFn, get_loss
from advx.attacks.registry import register
from advx.threat import Threat, per_sample

__all__ = ["Square", "p_schedule"]

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(p_init: float, it: int, queries: int) -> float:
    """Fraction of the input changed at iteration ``it`` of a ``queries`` budget."""
    t = int(it / queries * 10000)
    halvings = sum(t > h for h in _HALVINGS)
    return p_init / 2**halvings if t <= 10000 else p_init


class _Draw:
    """Random draws on the generator's device, moved to the data's."""

    def __init__(self, generator: torch.Generator, like: Tensor):
        self.g, self.like = generator, like
        self.pm = torch.ones((), dtype=like.dtype, device=like.device), -torch.ones((), dtype=like.dtype, device=like.device)

    def uniform(self, *shape: int) -> Tensor:
        return torch.rand(shape, generator=self.g, device=self.g.device).to(self.like)

    def signs(self, *shape: int) -> Tensor:
        return torch.where(self.uniform(*shape).lt(0.5), *self.pm)  # +1 below 0.5, else -1

    def offsets(self, n: int, high: int) -> Tensor:
        return torch.randint(0, high + 1, (n,), generator=self.g, device=self.g.device).to(self.like.device)


def _window(t: Tensor, vh: Tensor, vw: Tensor, sh: int, sw: int, windows: _Windows | None = None):
    """Advanced index of the (sh, sw) window at per-sample offsets (vh, vw), channels last."""
    b, ah, aw = (windows or _Windows()).ranges(t.shape[0], sh, sw, t.device)
    return b, (vh[:, None] + ah)[:, :, None], (vw[:, None] + aw)[:, None, :]


class _Windows:
    """The index ranges of :func:`_window`, made once per (rows, window) shape of a search."""

    def __init__(self):
        self.cache: dict = {}

    def ranges(self, n: int, sh: int, sw: int, device) -> tuple[Tensor, Tensor, Tensor]:
        key = (n, sh, sw, device)
        got = self.cache.get(key)
        if got is None:
            got = self.cache[key] = (torch.arange(n, device=device)[:, None, None], torch.arange(sh, device=device),
                                     torch.arange(sw, device=device))
        return got


def _get(t: Tensor, idx) -> Tensor:
    return t.permute(0, 2, 3, 1)[idx].permute(0, 3, 1, 2)  # (n, C, sh, sw)


def _put(t: Tensor, idx, value: Tensor | float) -> None:
    t.permute(0, 2, 3, 1)[idx] = value.permute(0, 2, 3, 1) if isinstance(value, Tensor) else value


def _nested_squares(a: int, b: int, dtype, device) -> Tensor:
    """Cells at Chebyshev distance d from the centre weigh sum_{j=d+1}^{m+1} 1/j^2 (unit L2 norm)."""
    r = (torch.arange(a, device=device) - a // 2).abs()
    c = (torch.arange(b, device=device) - b // 2).abs()
    d = torch.maximum(r[:, None], c[None, :])
    m = int(d.max())
    tail = (1.0 / torch.arange(1, m + 2, device=device, dtype=dtype) ** 2).flip(0).cumsum(0).flip(0)
    out = tail[d]
    return out / out.norm()


@functools.lru_cache(maxsize=256)
def _bump(a: int, b: int, split_rows: bool, dtype, device) -> Tensor:
    """Meta pseudo-Gaussian (a, b) pattern: two nested-square halves of opposite sign, unit norm."""
    if split_rows and a < 2 or not split_rows and b < 2:
        split_rows = a >= 2
    if (a if split_rows else b) < 2:
        return torch.ones(a, b, dtype=dtype, device=device) / math.sqrt(a * b)
    if split_rows:
        h = a // 2
        out = torch.cat([_nested_squares(h, b, dtype, device), -_nested_squares(a - h, b, dtype, device)], 0)
    else:
        h = b // 2
        out = torch.cat([_nested_squares(a, h, dtype, device), -_nested_squares(a, b - h, dtype, device)], 1)
    return out / out.norm()


@register("square", threats=("linf", "l2", "db"), kind="score-based", budget=("queries", "restarts"),
          summary="random search over square windows (Andriushchenko et al. 2020, arXiv:1912.00049)")
class Square(Attack):
    """Square Attack (Andriushchenko et al. 2020), Linf or L2, score-based.

    Args:
        threat: ``Linf(eps)`` or ``L2(eps)``.
        queries: forwards per sample for the whole call (a hard budget, the contract's 2 included).
        p_init: initial fraction of the input changed per iteration (0.8 as in AutoAttack).
        loss: "margin" (C&W logit margin, default), "ce", "dlr" or a callable; maximised.
        restarts: independent searches; each later one only on samples not yet fooled.
    """

    def __init__(self, threat: Threat, queries: int = 5000, p_init: float = 0.8, loss: str | LossFn = "margin",
                 restarts: int = 1, seed: int = 0):
        super().__init__(threat, seed)
        self.restarts = positive_int("restarts", restarts)
        self.queries = query_budget(queries, self.restarts)
        self.p_init = in_range("p_init", p_init, 0, 1, low_open=True)
        self.loss = get_loss(loss)
        self.l2 = threat.p == 2  # the threat's geometry, not its type

    def run(self, ctx: AttackContext) -> Tensor:
        return best_of_restarts(ctx, self.restarts, lambda idx: self._search(ctx, idx))

    # ---------------------------------------------------------------- search
    def _search(self, ctx: AttackContext, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        threat, x0 = self.threat, ctx.x[idx]
        y, target = ctx.labels(idx)
        draw = _Draw(ctx.generator, x0)
        img = as_image(x0)
        eps = threat.radius(x0)

        def judge(z: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
            logits = ctx.forward(z, idx[rows])
            t = None if target is None else target[rows]
            return self.loss(logits, y[rows], t), ctx.adversarial(logits, idx[rows])

        start = self._init_l2(img, eps, draw) if self.l2 else self._init_linf(img, eps, draw)
        x_best = threat.project(x0 + start.reshape(x0.shape), x0)
        act = torch.arange(len(idx), device=x0.device)
        loss_best, adv = judge(x_best, act)
        act = act[~adv]
        per_run = (self.queries - CONTRACT_QUERIES) // self.restarts
        windows = _Windows()
        # the active rows' constants, gathered again only when a row leaves
        x0a, eps_a, ida, ya = x0[act], eps[act], idx[act], y[act]
        ta = None if target is None else target[act]
        xb, lb = x_best[act], loss_best[act]  # the active rows' best points and losses (written back below)
        for it in range(1, per_run):
            if len(act) == 0:
                break
            p = p_schedule(self.p_init, it, self.queries // self.restarts)
            delta = as_image(xb - x0a)  # a new tensor: the steps may write into it
            if self.l2:
                x_new = self._step_l2(x0a, delta, eps_a, p, draw, windows)
            else:
                x_new = self._step_linf(x0a, xb, delta, eps_a, p, draw, windows)
            logits = ctx.forward(x_new, ida)
            loss_new, adv_new = self.loss(logits, ya, ta), is_adversarial(logits, ya, ta)
            better = adv_new | (loss_new > lb)
            xb, lb = torch.where(per_sample(better, x_new), x_new, xb), torch.where(better, loss_new, lb)
            if bool(adv_new.any()):
                x_best[act], loss_best[act] = xb, lb
                adv[act[adv_new]] = True
                keep = (~adv_new).nonzero().squeeze(1)
                act, xb, lb = act[keep], xb[keep], lb[keep]
                x0a, eps_a, ida, ya = x0[act], eps[act], idx[act], y[act]
                ta = None if target is None else target[act]
        if len(act):
            x_best[act], loss_best[act] = xb, lb
        return x_best, loss_best, adv

    # ------------------------------------------------------------------ Linf
    @staticmethod
    def _side(p: float, h: int, w: int, floor: int = 1) -> tuple[int, int]:
        """Window (height, width) covering a fraction p of an (h, w) plane."""
        if h > 1 and w > 1:
            s = int(round(math.sqrt(p * h * w)))
            s = min(max(s, floor, 1), max(min(h, w) - 1, 1))
            return s, s
        s = min(max(int(round(p * h * w)), floor, 1), max(h * w - 1, 1))
        return (1, s) if h == 1 else (s, 1)

    def _init_linf(self, img: Tensor, eps: Tensor, draw: _Draw) -> Tensor:
        n, c, _, w = img.shape
        return per_sample(eps, img) * draw.signs(n, c, 1, w).expand_as(img)

    def _step_linf(self, x0: Tensor, x_best: Tensor, delta: Tensor, eps: Tensor, p: float, draw: _Draw,
                   windows: _Windows | None = None) -> Tensor:
        n, c, h, w = delta.shape
        sh, sw = self._side(p, h, w)
        win = _window(delta, draw.offsets(n, h - sh), draw.offsets(n, w - sw), sh, sw, windows)
        if self.threat.separable:
            return self._step_linf_elementwise(x0, x_best, delta, eps, draw, win, sh, sw)
        best_win = _get(as_image(x_best), win)  # the window's current content, per row
        # first draw on every row (no row gathers), then redraw the rows whose window would not change
        d = delta.clone()
        _put(d, win, (per_sample(eps, d) * draw.signs(n, c, 1, 1)).expand(-1, -1, sh, sw))
        x_new = self.threat.project(x0 + d.reshape(x0.shape), x0)
        same = (_get(as_image(x_new), win) - best_win).abs().lt(1e-7).flatten(1).all(1)
        if not bool(same.any()):
            return x_new
        redo = same.nonzero().squeeze(1)
        for _ in range(9):  # resample the signs of windows the change would leave as they are
            d = delta[redo]
            sub = (torch.arange(len(redo), device=d.device)[:, None, None], win[1][redo], win[2][redo])
            _put(d, sub, (per_sample(eps[redo], d) * draw.signs(len(redo), c, 1, 1)).expand(-1, -1, sh, sw))
            cand = self.threat.project(x0[redo] + d.reshape(x0[redo].shape), x0[redo])
            x_new[redo] = cand
            same = (_get(as_image(cand), sub) - best_win[redo]).abs().lt(1e-7).flatten(1).all(1)
            redo = redo[same]
            if len(redo) == 0:
                break
        return x_new

    def _step_linf_elementwise(self, x0: Tensor, x_best: Tensor, delta: Tensor, eps: Tensor, draw: _Draw, win,
                               sh: int, sw: int) -> Tensor:
        """:meth:`_step_linf` for a separable projection (``Threat.separable``: Linf, Decibels), drawing the same.

        Each channel's window, projected, depends on its own sign only, and the rest of the row on neither:
        so the window is projected once at +eps and once at -eps on every channel, and the redraws of the
        windows that would stay as they are read which of the two each sign gives, without projecting again.
        """
        n, c = delta.shape[:2]
        e = per_sample(eps, delta)
        d_plus, d_minus = delta.clone(), delta.clone()
        _put(d_plus, win, e.expand(n, c, sh, sw))  # eps * (+1) is eps, eps * (-1) is -eps: the same values
        _put(d_minus, win, (-e).expand(n, c, sh, sw))
        both = self.threat.project(torch.cat([x0 + d_plus.reshape(x0.shape), x0 + d_minus.reshape(x0.shape)]),
                                   torch.cat([x0, x0]))
        plus, minus = as_image(both[:n]), as_image(both[n:])
        best_win = _get(as_image(x_best), win)
        same_plus = (_get(plus, win) - best_win).abs().lt(1e-7).flatten(2).all(2)  # (n, C): channel unchanged
        same_minus = (_get(minus, win) - best_win).abs().lt(1e-7).flatten(2).all(2)
        up = draw.uniform(n, c, 1, 1).lt(0.5).reshape(n, c)  # the sign +1 (draw.signs' rule)
        same = torch.where(up, same_plus, same_minus).all(1)
        if bool(same.any()):
            redo = same.nonzero().squeeze(1)
            for _ in range(9):  # resample the signs of windows the change would leave as they are
                u = draw.uniform(len(redo), c, 1, 1).lt(0.5).reshape(-1, c)
                up[redo] = u
                redo = redo[torch.where(u, same_plus[redo], same_minus[redo]).all(1)]
                if len(redo) == 0:
                    break
        return torch.where(up.reshape(n, c, 1, 1), plus, minus).reshape(x0.shape)

    # -------------------------------------------------------------------- L2
    def _init_l2(self, img: Tensor, eps: Tensor, draw: _Draw) -> Tensor:
        n, c, h, w = img.shape
        bh, bw = (max(h // 5, 1), max(w // 5, 1)) if h > 1 else (1, max(w // 5, 1))
        delta = torch.zeros_like(img)
        top, left = (h - bh * (h // bh)) // 2, (w - bw * (w // bw)) // 2
        for i in range(h // bh):
            for j in range(w // bw):
                split = bool(draw.uniform(1) < 0.5) if bh == bw else bh >= bw
                bump = _bump(bh, bw, split, img.dtype, img.device)
                r, q = top + i * bh, left + j * bw
                delta[:, :, r:r + bh, q:q + bw] += bump * draw.signs(n, c, 1, 1)
        norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        return delta * per_sample(eps / norm, delta)

    def _step_l2(self, x0: Tensor, delta: Tensor, eps: Tensor, p: float, draw: _Draw,
                 windows: _Windows | None = None) -> Tensor:
        n, c, h, w = delta.shape
        sh, sw = self._side(p, h, w, floor=3)
        if sh == sw and sh % 2 == 0 and sh < min(h, w):
            sh = sw = sh + 1  # odd windows centre the bump, as in the paper
        w1 = _window(delta, draw.offsets(n, h - sh), draw.offsets(n, w - sw), sh, sw, windows)
        w2 = _window(delta, draw.offsets(n, h - sh), draw.offsets(n, w - sw), sh, sw, windows)
        in_w1 = _get(delta, w1)
        mask = torch.zeros_like(delta)
        _put(mask, w1, 1.0)
        _put(mask, w2, 1.0)
        norm_w1 = in_w1.flatten(2).norm(dim=2)[..., None, None]  # (n, C, 1, 1)
        norm_union = (delta * mask).flatten(2).norm(dim=2)[..., None, None]
        room = (per_sample(eps, delta) ** 2 - delta.flatten(1).pow(2).sum(1).reshape(-1, 1, 1, 1)).clamp_min(0)
        budget = (room / c + norm_union**2).sqrt()
        bump = _bump(sh, sw, True, delta.dtype, delta.device)
        if sh == sw:  # a random orientation per sample
            bump = torch.where(draw.uniform(n, 1, 1, 1) < 0.5, bump, bump.T)
        new = bump * draw.signs(n, c, 1, 1) + in_w1 / (norm_w1 + 1e-10)
        new = new / new.flatten(2).norm(dim=2)[..., None, None].clamp_min(1e-12) * budget
        _put(delta, w2, 0.0)
        _put(delta, w1, new)
        scale = eps / delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        return self.threat.project(x0 + (delta * per_sample(scale, delta)).reshape(x0.shape), x0)
