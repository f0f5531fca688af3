"""Jacobian-based Saliency Map Attack (JSMA).

Papernot, McDaniel, Jha, Fredrikson, Celik & Swami, "The Limitations of Deep
Learning in Adversarial Settings", EuroS&P 2016 (https://arxiv.org/abs/1511.07528),
the L0 attack of the defensive-distillation paper. Targeted: with the forward
derivative of the model, for each pair of features (p, q) still in the search
domain let

    alpha = d F_t / d x_p + d F_t / d x_q,      (the target class)
    beta  = sum_{j != t} (d F_j / d x_p + d F_j / d x_q)   (all other classes)

and, for theta > 0 (features increase), pick the pair maximising alpha * |beta|
with alpha > 0 and beta < 0 (theta < 0: alpha < 0, beta > 0). Both features
move by theta times the width of the box and leave the search domain when they
reach the bound. Stop when the model outputs t, when the threat's k features
are changed, or when no pair qualifies.

Untargeted calls (no ``target=``) aim at the runner-up class of the clean input
and stop as soon as the label changes. By default the saliency map uses the
softmax probabilities F, as in the paper; then the other classes' derivative is
minus the target's (beta = -alpha), one backward pass per step suffices and the
best pair is simply the two features with the largest dF_t/dx. ``use_logits=True``
differentiates the logits instead (JSMA-Z of Carlini & Wagner 2017; two
backward passes per step).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from advx.attacks.base import Attack, AttackContext, in_range, positive_int
from advx.attacks.registry import register
from advx.threat import L0

__all__ = ["JSMA"]


@register("jsma", threats=("l0",), kind="minimum-norm",
          summary="Jacobian saliency map attack, pairs of features (Papernot et al. 2016, arXiv:1511.07528)")
class JSMA(Attack):
    """Saliency-map L0 attack (Papernot et al. 2016), batched over samples.

    Args:
        threat: an ``L0`` threat; ``k`` is the most features changed (the paper's
            gamma times the input size), its bounds the box features move in.
        theta: change per chosen feature as a fraction of the box width; +1 sets
            the features to the upper bound (the paper's setting), -1 to the lower.
        use_logits: saliency from the logits (JSMA-Z) instead of the probabilities (JSMA-F).
        chunk: samples per batch of the pair search (memory ~ chunk * features^2);
            None picks about 16M pairs per batch.
    """

    def __init__(self, threat: L0, theta: float = 1.0, use_logits: bool = False, chunk: int | None = None, seed: int = 0):
        super().__init__(threat, seed)
        self.theta = in_range("theta", theta, -1, 1, note=" and nonzero (fraction of the box width)")
        if self.theta == 0:
            raise ValueError(f"theta must be in [-1, 1] and nonzero (fraction of the box width), got {theta!r}")
        self.use_logits = bool(use_logits)
        self.chunk = None if chunk is None else positive_int("chunk", chunk, note=" or None")

    def run(self, ctx: AttackContext) -> Tensor:
        x = ctx.x
        n = len(x)
        lo, hi = (b.expand_as(x).reshape(n, -1) for b in self.threat.box(x))
        x_adv = x.reshape(n, -1).clone()
        target = ctx.target.clone() if ctx.targeted else torch.empty_like(ctx.y)
        act = (~ctx.initial_success).nonzero().squeeze(1)
        k = min(self.threat.k, x_adv.shape[1])
        for i in range(k * math.ceil(1 / abs(self.theta))):  # a feature leaves the domain after 1/theta moves
            if len(act) == 0:
                break
            logits, g_t, g_o, act = self._derivatives(ctx, x_adv[act].reshape(-1, *x.shape[1:]), act, target,
                                                      choose=i == 0)
            if len(act) == 0:
                break
            budget = k - (x_adv[act] != x.reshape(n, -1)[act]).sum(1)
            domain = x_adv[act] < hi[act] if self.theta > 0 else x_adv[act] > lo[act]
            pick, ok = self._pairs(g_t, g_o, domain, budget)
            ok &= budget > 0  # the threat's k features are spent
            act, pick, ok = act[ok], pick[ok], ok[ok]
            if len(act) == 0:
                break
            step = self.theta * (hi[act] - lo[act]).gather(1, pick)
            step[:, 1] = torch.where(pick[:, 0] == pick[:, 1], 0.0, step[:, 1])  # a single feature moves once
            rows = x_adv[act]
            rows.scatter_add_(1, pick, step)
            x_adv[act] = torch.minimum(torch.maximum(rows, lo[act]), hi[act])
        return x_adv.reshape(x.shape)

    def _pairs(self, g_t: Tensor, g_o: Tensor, domain: Tensor, budget: Tensor) -> tuple[Tensor, Tensor]:
        """Best pair (p, q) per row, (n, 2), and whether one qualifies. Rows with a
        budget of one feature pick a single feature (p = q)."""
        sign = 1.0 if self.theta > 0 else -1.0  # flip so that the conditions read alpha > 0, beta < 0
        a = (sign * g_t).masked_fill(~domain, -torch.inf)  # features outside the domain never qualify
        b = sign * g_o
        d = a.shape[1]
        singles = (budget == 1) | (domain.sum(1) < 2)  # one feature left to change or to choose
        if not self.use_logits:  # beta = -alpha: maximise alpha^2 with alpha > 0 -> the top two of a
            top, arg = a.topk(min(2, d), dim=1)
            one = singles
            pick = torch.where(one[:, None], arg[:, :1].expand(-1, 2), arg)
            score = torch.where(one, top[:, 0], top.sum(1))
            return pick, torch.isfinite(score) & (score > 0)
        eye = torch.eye(d, dtype=torch.bool, device=a.device)
        chunk = self.chunk or max(1, 2**24 // (d * d))
        picks, oks = [], []
        for s in range(0, len(a), chunk):
            ac, bc, one = a[s : s + chunk], b[s : s + chunk], singles[s : s + chunk]
            alpha = ac[:, :, None] + ac[:, None, :]
            beta = bc[:, :, None] + bc[:, None, :]
            bad = (alpha <= 0) | (beta >= 0) | torch.where(one[:, None, None], ~eye, eye)
            score = alpha.mul_(beta).neg_().masked_fill_(bad, -torch.inf).flatten(1)  # alpha * |beta|
            best = score.argmax(1)
            picks.append(torch.stack([best // d, best % d], 1))
            oks.append(torch.isfinite(score.gather(1, best[:, None]).squeeze(1)))
        return torch.cat(picks), torch.cat(oks)

    def _derivatives(self, ctx: AttackContext, x: Tensor, idx: Tensor, target: Tensor,
                     choose: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Forward on rows ``idx``; drop rows already adversarial; for the rest the
        flat gradients of the target output and of the sum of the other outputs.
        With ``choose`` (clean input, untargeted) set the runner-up as target."""
        ctx.counter.add(idx, forwards=1)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            logits = ctx.model(xg)
            out = logits if self.use_logits else logits.softmax(1)
            if choose and not ctx.targeted:
                target[idx] = logits.detach().scatter(1, ctx.y[idx, None], -torch.inf).argmax(1)
            todo = ~ctx.adversarial(logits.detach(), idx)
            if not bool(todo.any()):
                empty = x.new_empty((0, x[0].numel()))
                return logits.detach()[todo], empty, empty, idx[todo]
            z_t = out.gather(1, target[idx, None]).squeeze(1)
            if self.use_logits:
                ctx.counter.add(idx, forwards=0, backwards=2)
                (g_t,) = torch.autograd.grad(z_t.sum(), xg, retain_graph=True)
                (g_all,) = torch.autograd.grad(out.sum(), xg)
                g_o = g_all - g_t
            else:  # probabilities sum to one: the others' derivative is minus the target's
                ctx.counter.add(idx, forwards=0, backwards=1)
                (g_t,) = torch.autograd.grad(z_t.sum(), xg)
                g_o = -g_t
        g_t, g_o = g_t.flatten(1)[todo], g_o.flatten(1)[todo]
        return logits.detach()[todo], g_t, g_o, idx[todo]
