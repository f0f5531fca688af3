"""DeepFool: step to the nearest linearised decision boundary.

Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to
fool deep neural networks", CVPR 2016 (https://arxiv.org/abs/1511.04599).
At the current point x_i, for each candidate class k != y let
f_k = z_k - z_y and w_k = grad f_k. The linearised boundary of class k lies at
distance |f_k| / ||w_k||_q, with q the dual norm of the threat (q = 2 for L2,
q = 1 for Linf). Step onto the closest one,

    r_i = (|f_l| + 1e-4) / ||w_l||_q^q * |w_l|^(q-1) * sign(w_l),

accumulate r = sum_i r_i, and move to x + (1 + overshoot) * r (kept in the box),
until the label changes. The candidates are the ``candidates`` classes with the
highest clean logits (the true class among them), as in the paper's code.

A *minimum-norm* attack: eps is ignored while searching; the base class projects
the result into the ball, so ``success`` holds where the found distance fits.
Untargeted only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from advx.attacks.base import Attack, AttackContext, in_range, positive_int
from advx.attacks.registry import register
from advx.threat import L2, Linf

__all__ = ["DeepFool"]


@register("deepfool", threats=("l2", "linf"), kind="minimum-norm", targeted=False,
          summary="step to the nearest linearised boundary (Moosavi-Dezfooli et al. 2016, arXiv:1511.04599)")
class DeepFool(Attack):
    """DeepFool (Moosavi-Dezfooli et al. 2016), L2 or Linf.

    Args:
        threat: ``L2`` or ``Linf``; bounds keep the iterates valid, eps is the budget.
        steps: maximum linearisation steps per sample.
        overshoot: the accumulated step is scaled by 1 + overshoot to cross the boundary.
        candidates: number of most likely classes (including the true one) whose
            boundaries are considered; one backward pass per candidate and step.
    """

    minimum_norm = True

    def __init__(self, threat: L2 | Linf, steps: int = 50, overshoot: float = 0.02, candidates: int = 10,
                 seed: int = 0):
        super().__init__(threat, seed)
        self.steps, self.overshoot = positive_int("steps", steps), in_range("overshoot", overshoot, 0)
        self.candidates = positive_int("candidates", candidates, minimum=2, note=" (the true class and one other)")

    def run(self, ctx: AttackContext) -> Tensor:
        if ctx.targeted:
            raise ValueError("target: DeepFool is untargeted only; call it without target= "
                             "(or use CarliniWagnerL2 / PGD for a targeted attack)")
        x = ctx.x
        x_adv = x.clone()
        act = (~ctx.initial_success).nonzero().squeeze(1)
        if len(act) == 0:
            return x_adv
        k = min(self.candidates, ctx.num_classes)
        cands = torch.empty(len(x), k - 1, dtype=torch.long, device=x.device)  # set at the first step
        r_tot = torch.zeros_like(x)
        for i in range(self.steps):
            logits, grads, act = self._class_gradients(ctx, x_adv[act], act, cands, choose=i == 0)
            if len(act) == 0:
                break
            y = ctx.y[act]
            f = logits.gather(1, cands[act]) - logits.gather(1, y[:, None])  # (n, k-1), < 0
            w_norm = self.threat.dual_norm(grads.flatten(0, 1)).reshape(grads.shape[:2]).clamp_min(1e-12)  # (n, k-1)
            best = (f.abs() / w_norm).argmin(1)
            f_l = f.gather(1, best[:, None]).squeeze(1).abs()
            w_l = grads[torch.arange(len(act)), best]
            r = self.threat.hyperplane_step(w_l, f_l + 1e-4)  # onto the linearised boundary, in the threat's norm
            finite = torch.isfinite(r).flatten(1).all(1)  # NaN/inf gradients: stop that sample at its last point
            if not bool(finite.all()):
                act, r = act[finite], r[finite]
                if len(act) == 0:
                    break
            r_tot[act] += r
            x_adv[act] = self.threat.clip(x[act] + (1 + self.overshoot) * r_tot[act])
        return x_adv

    @staticmethod
    def _class_gradients(ctx: AttackContext, x: Tensor, idx: Tensor, cands: Tensor,
                         choose: bool) -> tuple[Tensor, Tensor, Tensor]:
        """For rows ``idx`` at points ``x``: drop those already adversarial, and for the
        rest return logits (n, C), grad (z_k - z_y) per candidate k (n, K, ...) and their rows.
        With ``choose`` (at the clean input), first fill ``cands[idx]`` with the most
        likely other classes, as in the paper's code.

        One forward for all rows; if any row is still correct, one backward per
        candidate over the whole graph, counted on every row it ran on.
        """
        ctx.counter.add(idx, forwards=1)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            logits = ctx.model(xg)
            todo = ~ctx.adversarial(logits.detach(), idx)
            if choose:
                cands[idx] = logits.detach().scatter(1, ctx.y[idx, None], -torch.inf).topk(cands.shape[1], 1).indices
            if not bool(todo.any()):
                return logits.detach()[todo], x.new_empty((0, cands.shape[1], *x.shape[1:])), idx[todo]
            ctx.counter.add(idx, forwards=0, backwards=cands.shape[1])
            y, c = ctx.y[idx], cands[idx]
            z_y = logits.gather(1, y[:, None]).squeeze(1)
            grads = []
            for j in range(c.shape[1]):
                diff = (logits.gather(1, c[:, j : j + 1]).squeeze(1) - z_y)[todo]
                (g,) = torch.autograd.grad(diff.sum(), xg, retain_graph=j + 1 < c.shape[1])
                grads.append(g[todo])
        return logits.detach()[todo], torch.stack(grads, dim=1), idx[todo]
