"""Carlini & Wagner's L2 attack.

Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks",
IEEE S&P 2017 (https://arxiv.org/abs/1608.04644). Minimise

    ||x' - x||_2^2 + c * f(x'),   f(x') = max(z_y - max_{j!=y} z_j, -kappa)

(targeted: f = max(max_{j!=t} z_j - z_t, -kappa)) over x' = box(tanh(w)), the
change of variables that keeps x' inside the input box without clipping, with
Adam on w. A binary search per sample over the constant c finds the smallest c
that still gives an adversarial point; over all iterations the adversarial
point with the smallest L2 distance is kept.

This is a *minimum-norm* attack: it ignores eps while searching. The threat's
eps is the budget: the result is the minimal adversarial point found when its
distance is <= eps; otherwise the base class projects it into the ball (where
it is usually no longer adversarial, and ``success`` says so). Samples where no
adversarial point is found are returned unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from advx.attacks.base import Attack, AttackContext, in_range, positive_int
from advx.attacks.losses import margin
from advx.attacks.registry import register
from advx.threat import L2

__all__ = ["CarliniWagnerL2", "search_const", "reached"]


def reached(ctx: AttackContext, logits: Tensor, idx: Tensor, confidence: float) -> Tensor:
    """Adversarial with a logit margin of at least ``confidence`` (kappa)."""
    y, target = ctx.labels(idx)
    return ctx.adversarial(logits, idx) & (margin(logits, y, target) >= confidence)


def search_const(ctx: AttackContext, rounds: int, initial_const: float,
                 one_round: Callable[[Tensor, Tensor], Tensor]) -> None:
    """The per-sample binary search over c (C&W, reused by EAD).

    ``one_round(idx, c)`` runs the rows ``idx`` (those not adversarial at the
    clean input) at constants ``c`` and returns which found an adversarial
    point: success -> try a smaller c, failure -> a larger one (x10 until bracketed).
    """
    x = ctx.x
    todo = (~ctx.initial_success).nonzero().squeeze(1)
    lower = torch.zeros(len(todo), dtype=x.dtype, device=x.device)
    upper = torch.full((len(todo),), math.inf, dtype=x.dtype, device=x.device)
    const = torch.full((len(todo),), initial_const, dtype=x.dtype, device=x.device)
    for _ in range(rounds if len(todo) else 0):
        found = one_round(todo, const)
        upper = torch.where(found, torch.minimum(upper, const), upper)
        lower = torch.where(found, lower, torch.maximum(lower, const))
        const = torch.where(torch.isfinite(upper), (lower + upper) / 2, const * 10)


@register("cw", threats=("l2",), kind="minimum-norm",
          summary="Carlini & Wagner L2: Adam in tanh space, binary search over c (2017, arXiv:1608.04644)")
class CarliniWagnerL2(Attack):
    """C&W L2 (Carlini & Wagner 2017) with batched binary search over c.

    Args:
        threat: an ``L2`` threat; its bounds define the tanh box, its eps the budget.
        steps: Adam iterations per binary-search step. The paper uses 10,000 at
            lr 1e-2; on MNIST, 200 at lr 5e-2 came within 1.3% of the median L2 of
            1,000 at lr 1e-2 for a quarter of the passes (``docs/attacks/minimum_norm.md``).
        binary_search_steps: rounds of the search over c (each restarts Adam).
        initial_const: c of the first round; multiplied by 10 until a success.
        confidence: kappa, the logit margin the adversarial point must reach.
        lr: Adam step size on w (in tanh space). Pixels at a bound start at
            |w| = atanh(1 - 1e-6) ~ 7.3, so a small lr leaves them stuck for
            ~7 / lr steps; 5e-2 suits a few hundred steps.
        abort_early: stop a sample's round when its loss has not dropped by
            0.01% over the last ``steps // 10`` iterations.
    """

    minimum_norm = True

    def __init__(
        self,
        threat: L2,
        steps: int = 200,
        binary_search_steps: int = 9,
        initial_const: float = 1e-3,
        confidence: float = 0.0,
        lr: float = 5e-2,
        abort_early: bool = True,
        seed: int = 0,
    ):
        super().__init__(threat, seed)
        self.steps = positive_int("steps", steps)
        self.binary_search_steps = positive_int("binary_search_steps", binary_search_steps)
        self.initial_const = in_range("initial_const", initial_const, 0, low_open=True)
        self.confidence = in_range("confidence", confidence, 0)
        self.lr = in_range("lr", lr, 0, low_open=True)
        self.abort_early = bool(abort_early)

    def run(self, ctx: AttackContext) -> Tensor:
        x = ctx.x
        lo, hi = (b.expand_as(x) for b in self.threat.box(x))
        half = (hi - lo) / 2
        # w such that x = lo + half * (tanh(w) + 1); shrink a little so atanh stays finite.
        w0 = torch.atanh(((x - lo) / half - 1).clamp(-1, 1) * (1 - 1e-6))
        best = x.clone()
        best_dist = torch.full((len(x),), math.inf, dtype=x.dtype, device=x.device)
        search_const(ctx, self.binary_search_steps, self.initial_const,
                     lambda idx, c: self._round(ctx, idx, w0[idx], lo[idx], half[idx], c, best, best_dist))
        return best

    def _round(self, ctx: AttackContext, idx: Tensor, w: Tensor, lo: Tensor, half: Tensor, const: Tensor,
               best: Tensor, best_dist: Tensor) -> Tensor:
        """One Adam run at fixed c on rows ``idx``; updates best/best_dist in place."""
        x0 = ctx.x[idx]
        y, target = ctx.labels(idx)
        found = torch.zeros(len(idx), dtype=torch.bool, device=x0.device)
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        beta1, beta2 = 0.9, 0.999
        prev = torch.full((len(idx),), math.inf, dtype=x0.dtype, device=x0.device)
        check_every = max(1, self.steps // 10)
        act = torch.arange(len(idx), device=x0.device)  # rows of idx still iterating

        def loss_fn(z):
            return const * (-margin(z, y, target)).clamp_min(-self.confidence)

        for t in range(1, self.steps + 1):
            tw = torch.tanh(w)
            x_adv = lo + half * (tw + 1)
            f, grad, logits = ctx.gradient(x_adv, loss_fn, idx[act])
            delta = x_adv - x0
            dist = delta.flatten(1).norm(dim=1)

            adv = reached(ctx, logits, idx[act], self.confidence)
            found[act] |= adv
            better = adv & (dist < best_dist[idx[act]])
            if bool(better.any()):
                rows = idx[act[better]]
                best[rows], best_dist[rows] = x_adv[better], dist[better]

            # d/dw of ||delta||^2 + c f: chain through x_adv = lo + half * (tanh(w) + 1); Adam step.
            g = (2 * delta + grad) * half * (1 - tw.pow(2))
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g.pow(2)
            w = w - self.lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + 1e-8)

            if self.abort_early and t % check_every == 0:
                loss = dist.pow(2) + f
                keep = loss <= prev * 0.9999
                prev = loss
                if not bool(keep.all()):  # drop the rows that stopped improving
                    act, w, m, v, prev = act[keep], w[keep], m[keep], v[keep], prev[keep]
                    x0, lo, half, const, y = x0[keep], lo[keep], half[keep], const[keep], y[keep]
                    target = None if target is None else target[keep]
                    if len(act) == 0:
                        break
        return found
