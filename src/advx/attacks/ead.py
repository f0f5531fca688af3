"""EAD: the elastic-net attack, for L1.

Chen, Sharma, Zhang, Yi & Hsieh, "EAD: Elastic-Net Attacks to Deep Neural
Networks via Adversarial Examples", AAAI 2018 (https://arxiv.org/abs/1709.04114).
Minimise over x' in the input box

    c * f(x') + beta * ||x' - x||_1 + ||x' - x||_2^2

with f the C&W margin loss with confidence kappa. The smooth part
g = c f + ||x' - x||_2^2 is handled by gradient steps, the L1 part and the box
by the projected shrinkage-thresholding operator S_beta (ISTA); FISTA adds the
momentum y_{k+1} = x_{k+1} + k / (k + 3) (x_{k+1} - x_k):

    x_{k+1} = S_beta(y_k - a_k grad g(y_k)),   a_k = lr * sqrt(1 - k / steps).

As in the paper, S_beta thresholds at beta itself (not a_k * beta). Here y_k is
kept in the box so that the model is only queried on valid inputs. A binary
search per sample over c (as in C&W) and a decision rule pick the result
among the adversarial iterates x_k: "L1" (smallest L1 distance, the default)
or "EN" (smallest elastic-net distance beta * L1 + L2^2).

A *minimum-norm* attack: the threat's eps is the budget. The result is the
best adversarial point found when its L1 distance is <= eps; otherwise the base
class projects it into the ball (where ``success`` is judged again).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from advx.attacks.base import Attack, AttackContext, in_range, positive_int
from advx.attacks.cw import reached, search_const
from advx.attacks.losses import margin
from advx.attacks.registry import register
from advx.threat import L1

__all__ = ["EAD"]


@register("ead", threats=("l1",), kind="minimum-norm",
          summary="elastic-net attack, FISTA on L1 + L2 (Chen et al. 2018, arXiv:1709.04114)")
class EAD(Attack):
    """Elastic-net attack (Chen et al. 2018) with FISTA and binary search over c.

    Args:
        threat: an ``L1`` threat; its bounds are the box, its eps the budget.
        beta: weight of the L1 term and the shrinkage threshold.
        steps: (F)ISTA iterations per binary-search step (paper: 1000).
        binary_search_steps: rounds of the search over c.
        initial_const: c of the first round; multiplied by 10 until a success.
        confidence: kappa, the logit margin the adversarial point must reach.
        lr: initial step size a_0, decayed as sqrt(1 - k / steps).
        decision_rule: "L1" or "EN", which adversarial iterate is kept.
        fista: FISTA momentum (True) or plain ISTA (False).
        abort_early: stop a sample's round when its objective has not dropped
            by 0.01% over the last ``steps // 10`` iterations.
    """

    minimum_norm = True

    def __init__(
        self,
        threat: L1,
        beta: float = 1e-2,
        steps: int = 200,
        binary_search_steps: int = 9,
        initial_const: float = 1e-3,
        confidence: float = 0.0,
        lr: float = 1e-2,
        decision_rule: str = "L1",
        fista: bool = True,
        abort_early: bool = True,
        seed: int = 0,
    ):
        super().__init__(threat, seed)
        self.steps = positive_int("steps", steps)
        self.binary_search_steps = positive_int("binary_search_steps", binary_search_steps)
        self.beta, self.confidence = in_range("beta", beta, 0), in_range("confidence", confidence, 0)
        self.initial_const = in_range("initial_const", initial_const, 0, low_open=True)
        self.lr = in_range("lr", lr, 0, low_open=True)
        if str(decision_rule).upper() not in ("L1", "EN"):
            raise ValueError(f"decision_rule must be 'L1' or 'EN', got {decision_rule!r}")
        self.decision_rule, self.fista, self.abort_early = str(decision_rule).upper(), bool(fista), bool(abort_early)

    def _shrink(self, z: Tensor, x0: Tensor) -> Tensor:
        """S_beta: soft-threshold z - x0 at beta, then keep the result in the box."""
        d = z - x0
        return self.threat.clip(x0 + d.sign() * (d.abs() - self.beta).clamp_min(0))

    def run(self, ctx: AttackContext) -> Tensor:
        x = ctx.x
        best = x.clone()
        best_score = torch.full((len(x),), math.inf, dtype=x.dtype, device=x.device)
        search_const(ctx, self.binary_search_steps, self.initial_const,
                     lambda idx, c: self._round(ctx, idx, c, best, best_score))
        return best

    def _round(self, ctx: AttackContext, idx: Tensor, const: Tensor, best: Tensor, best_score: Tensor) -> Tensor:
        """(F)ISTA at fixed c on rows ``idx``; updates best/best_score in place."""
        x0 = ctx.x[idx]
        y, target = ctx.labels(idx)
        found = torch.zeros(len(idx), dtype=torch.bool, device=x0.device)
        x_k, y_k = x0.clone(), x0.clone()
        prev = torch.full((len(idx),), math.inf, dtype=x0.dtype, device=x0.device)
        check_every = max(1, self.steps // 10)
        act = torch.arange(len(idx), device=x0.device)  # rows of idx still iterating

        def loss_fn(z):
            return const * (-margin(z, y, target)).clamp_min(-self.confidence)

        for k in range(self.steps):
            _, grad, _ = ctx.gradient(y_k, loss_fn, idx[act])
            step = self.lr * math.sqrt(1 - k / self.steps)
            x_new = self._shrink(y_k - step * (grad + 2 * (y_k - x0)), x0)
            y_k = self.threat.clip(x_new + k / (k + 3) * (x_new - x_k)) if self.fista else x_new
            x_k = x_new

            logits = ctx.forward(x_k, idx[act])  # judge the iterate itself, as in the paper
            delta = (x_k - x0).flatten(1)
            l1, l2sq = delta.abs().sum(1), delta.pow(2).sum(1)
            adv = reached(ctx, logits, idx[act], self.confidence)
            found[act] |= adv
            score = l1 if self.decision_rule == "L1" else self.beta * l1 + l2sq
            better = adv & (score < best_score[idx[act]])
            if bool(better.any()):
                rows = idx[act[better]]
                best[rows], best_score[rows] = x_k[better], score[better]

            if self.abort_early and (k + 1) % check_every == 0:
                objective = loss_fn(logits) + l2sq + self.beta * l1
                keep = objective <= prev * 0.9999
                prev = objective
                if not bool(keep.all()):  # drop the rows that stopped improving
                    act, x_k, y_k, x0, prev = act[keep], x_k[keep], y_k[keep], x0[keep], prev[keep]
                    const, y = const[keep], y[keep]
                    target = None if target is None else target[keep]
                    if len(act) == 0:
                        break
        return found
