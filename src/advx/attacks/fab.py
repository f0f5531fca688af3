"""FAB: the Fast Adaptive Boundary attack, a minimum-norm attack for Linf, L2, L1.

Croce & Hein, "Minimally distorted adversarial examples with a fast adaptive
boundary attack", ICML 2020 (https://arxiv.org/abs/1907.02044). At the iterate
x_k, linearise the decision function f = z_l - z_y around x_k and pick the
closest linearised boundary pi (untargeted: the class l minimising
|f_l| / ||grad f_l||_q, q the dual norm; FAB-T: a fixed target class). Let
d_k and d_0 be the minimal-norm steps from x_k and from the original x_0 onto
pi within the box; with alpha = min(||d_k|| / (||d_k|| + ||d_0||), alpha_max),

    x_k+1 = clip((1 - alpha) * (x_k + eta * d_k) + alpha * (x_0 + eta * d_0)),

biased towards x_0 so that the points found stay close to it. Whenever x_k+1
is adversarial it is kept if closer than the best so far, and the iterate
steps back: x_k+1 <- x_0 + beta * (x_k+1 - x_0). Defaults alpha_max = 0.1,
eta = 1.05, beta = 0.9. Restarts (only on samples not yet adversarial within
the threat's radius) start at a random point of the ball of radius
min(eps, best distance) / 2 (uniform in the ball here, on its sphere in the paper).

FAB-T (AutoAttack's variant) runs FAB against each of the top-k classes other
than y in turn, with one gradient per step instead of C - 1. A call with
``target=`` uses the boundary between the target and its strongest rival.
A *minimum-norm* attack: eps only bounds the result; the base class projects it
into the ball, so ``success`` holds where the found distance fits.
"""

from __future__ import annotations

import torch
from torch import Tensor

from advx.attacks.base import Attack, AttackContext, BestRuns, in_range, positive_int, top_targets
from advx.attacks.losses import margin
from advx.attacks.registry import register
from advx.threat import Threat, per_sample

__all__ = ["FAB", "FABT", "project_hyperplane"]


def project_hyperplane(p: Tensor, w: Tensor, r: Tensor, lo: Tensor, hi: Tensor, norm: str) -> Tensor:
    """The smallest step d (in ``norm``) with w . d = r and lo <= p + d <= hi.

    All (N, D) but ``r`` (N,). Where the box makes the hyperplane unreachable,
    the step goes as far towards it as the box allows. Each coordinate moves
    by ``room`` at most, in the direction sign(r * w_i); the progress
    g(lam) = sum_i |w_i| min(lam * c_i, room_i) (c_i = 1 for Linf, |w_i| for L2)
    is piecewise linear, and lam is found exactly from its sorted breakpoints.
    L1 moves the coordinates with the largest |w_i| first (a fractional knapsack).
    """
    s = torch.where(r >= 0, 1.0, -1.0).to(p.dtype)[:, None] * torch.where(w >= 0, 1.0, -1.0).to(p.dtype)
    room = torch.where(s > 0, hi - p, p - lo).clamp_min(0)
    a, need = w.abs(), r.abs()[:, None]
    if norm == "l1":
        order = a.argsort(dim=1, descending=True)
        gain = (a * room).gather(1, order).cumsum(1)  # progress after filling the first j coordinates
        before = gain - (a * room).gather(1, order)
        part = ((need - before) / a.gather(1, order).clamp_min(1e-30)).clamp(0)
        move = torch.minimum(part, room.gather(1, order))
        move = torch.where(before >= need, torch.zeros_like(move), move)
        d = torch.empty_like(move).scatter_(1, order, move)
    else:
        c = torch.ones_like(a) if norm == "linf" else a
        tau = torch.where(c > 0, room / c.clamp_min(1e-30), torch.full_like(a, torch.inf))
        tau, order = tau.sort(dim=1)
        ac, ar = (a * c).gather(1, order), (a * room).gather(1, order)
        sat = ar.cumsum(1)  # saturated progress once the first j+1 breakpoints are passed
        free = ac.sum(1, keepdim=True) - ac.cumsum(1)  # slope after them
        g = sat + torch.where(free > 0, tau.nan_to_num(posinf=0.0) * free, torch.zeros_like(free))
        j = (g < need).sum(1, keepdim=True)  # first breakpoint with g >= need
        zero = torch.zeros_like(need)
        sat_prev = torch.where(j > 0, sat.gather(1, (j - 1).clamp_min(0)), zero)
        free_prev = torch.where(j > 0, free.gather(1, (j - 1).clamp_min(0)), ac.sum(1, keepdim=True))
        lam = torch.where(j < a.shape[1], (need - sat_prev) / free_prev.clamp_min(1e-30), torch.full_like(need, torch.inf))
        d = torch.where(c > 0, torch.minimum(lam * c.clamp_min(1e-30), room), torch.zeros_like(room))
    return torch.where((need > 0) & (a > 0), s * d, torch.zeros_like(d))


@register("fab", threats=("linf", "l2", "l1", "db"), kind="minimum-norm",
          summary="fast adaptive boundary: projection onto linearised boundaries (Croce & Hein 2020, arXiv:1907.02044)")
class FAB(Attack):
    """FAB (Croce & Hein 2020), untargeted: the closest of all C - 1 linearised boundaries.

    Args:
        threat: ``Linf``, ``L2`` or ``L1``; the box keeps the iterates valid, eps bounds the result.
        steps: iterations per restart (each: C - 1 gradients, or one for FAB-T, and a forward).
        restarts: runs from random starts, only on samples not adversarial within eps.
        alpha_max, eta, beta: the bias towards x_0, the overshoot and the backward step.
    """

    minimum_norm = True

    def __init__(self, threat: Threat, steps: int = 100, restarts: int = 1, alpha_max: float = 0.1,
                 eta: float = 1.05, beta: float = 0.9, seed: int = 0):
        super().__init__(threat, seed)
        self.steps, self.restarts = positive_int("steps", steps), positive_int("restarts", restarts)
        self.alpha_max = in_range("alpha_max", alpha_max, 0, 1)
        self.eta = in_range("eta (overshoot)", eta, 1)
        self.beta = in_range("beta", beta, 0, 1, low_open=True)

    @property
    def _norm(self) -> str:
        return {2.0: "l2", 1.0: "l1"}.get(self.threat.p, "linf")  # the Lp ball of the threat (dB: an Linf ball)

    # ------------------------------------------------------------ restarts
    def run(self, ctx: AttackContext) -> Tensor:
        return self._restarts(ctx, BestRuns.start(ctx), None)

    def _restarts(self, ctx: AttackContext, best: BestRuns, loss_target: Tensor | None) -> Tensor:
        """Runs on the samples not yet adversarial within eps. The score of a point is
        minus its distance (-inf: none found), so ``best`` keeps the closest one."""
        radius = self.threat.radius(ctx.x)
        for r in range(self.restarts):
            todo = best.todo()
            if len(todo) == 0:
                break
            t = None if loss_target is None else loss_target[todo]
            x_r, d_r = self._one_run(ctx, todo, t, -best.loss[todo], random_start=r > 0)
            best.update(todo, x_r, -d_r, d_r <= radius[todo])
        return best.x

    # -------------------------------------------------------------- one run
    def _one_run(self, ctx: AttackContext, idx: Tensor, loss_target: Tensor | None, best_dist: Tensor,
                 random_start: bool) -> tuple[Tensor, Tensor]:
        """FAB on rows ``idx``: the closest adversarial point found and its distance (inf if none)."""
        threat, x0 = self.threat, ctx.x[idx]
        n = len(idx)
        lo, hi = (b.expand_as(x0).reshape(n, -1) for b in threat.box(x0))
        x_k = x0.clone()
        if random_start:  # a random point of the ball of radius min(eps, best) / 2
            rad = threat.radius(x0)
            scale = torch.where(rad > 0, torch.minimum(rad, best_dist) / (2 * rad.clamp_min(1e-30)), 0.0)
            x_k = x0 + per_sample(scale, x0) * (threat.random_start(x0, ctx.generator) - x0)
        x_best, d_best = x0.clone(), torch.full((n,), torch.inf, dtype=x0.dtype, device=x0.device)
        flat0 = x0.reshape(n, -1)
        for _ in range(self.steps):
            f, w = self._boundary(ctx, x_k, idx, loss_target)  # (n,), (n, D): f + w . (z - x_k) = 0
            xk = x_k.reshape(n, -1)
            d1 = project_hyperplane(xk, w, -f, lo, hi, self._norm)
            d2 = project_hyperplane(flat0, w, -f - (w * (flat0 - xk)).sum(1), lo, hi, self._norm)
            a1 = threat.norm(d1).clamp_min(1e-8)
            a2 = threat.norm(d2).clamp_min(1e-8)
            alpha = (a1 / (a1 + a2)).clamp(0, self.alpha_max)[:, None]
            step = (1 - alpha) * (xk + self.eta * d1) + alpha * (flat0 + self.eta * d2)
            x_k = threat.clip(step.reshape(x0.shape))
            adv = ctx.adversarial(ctx.forward(x_k, idx), idx)
            if bool(adv.any()):
                dist = threat.norm(x_k - x0)  # in the units of radius(), also for relative threats
                closer = adv & (dist < d_best)
                x_best[closer], d_best[closer] = x_k[closer], dist[closer]
                x_k = torch.where(per_sample(adv, x_k), x0 + self.beta * (x_k - x0), x_k)
        return x_best, d_best

    def _boundary(self, ctx: AttackContext, x_k: Tensor, idx: Tensor, loss_target: Tensor | None):
        """f (< 0 before the boundary) and its input gradient for the chosen boundary of each row."""
        y, target = ctx.labels(idx)
        if loss_target is not None:  # FAB-T: z_t - z_y
            def fn(z):
                return z.gather(1, loss_target[:, None]).squeeze(1) - z.gather(1, y[:, None]).squeeze(1)
        elif target is not None:  # the target against its strongest rival
            def fn(z):
                return margin(z, y, target)
        else:
            return self._closest_of_all(ctx, x_k, idx)
        f, grad, _ = ctx.gradient(x_k, fn, idx)
        return f, grad.reshape(len(idx), -1)

    def _closest_of_all(self, ctx: AttackContext, x_k: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """One forward and C - 1 backward passes: the boundary l minimising |f_l| / ||w_l||_q."""
        y, n, c = ctx.y[idx], len(idx), ctx.num_classes
        ctx.counter.add(idx, forwards=1, backwards=c - 1)
        others = torch.arange(c, device=y.device).expand(n, c)[torch.arange(c, device=y.device) != y[:, None]]
        others = others.reshape(n, c - 1)
        with torch.enable_grad():
            xg = x_k.detach().requires_grad_(True)
            logits = ctx.model(xg)
            f = logits.gather(1, others) - logits.gather(1, y[:, None])  # (n, C - 1)
            grads = [torch.autograd.grad(f[:, j].sum(), xg, retain_graph=j + 1 < c - 1)[0].reshape(n, -1)
                     for j in range(c - 1)]
        w = torch.stack(grads, 1)
        f = f.detach()
        pick = (f.abs() / self.threat.dual_norm(w.flatten(0, 1)).reshape(n, c - 1).clamp_min(1e-12)).argmin(1)
        rows = torch.arange(n, device=y.device)
        return f[rows, pick], w[rows, pick]


@register("fab-t", threats=("linf", "l2", "l1", "db"), kind="minimum-norm",
          summary="FAB against each of the top other classes in turn (Croce & Hein 2020, arXiv:2003.01690)")
class FABT(FAB):
    """FAB-T: FAB against each of the ``n_target_classes`` most likely other classes in turn.

    Untargeted calls (success = misclassified) run, for target rank 1..k
    (k = min(n_target_classes, C - 1)), FAB on the boundary z_t - z_y, only on the
    samples not yet adversarial within eps. With ``target=`` it runs FAB towards it.
    """

    def __init__(self, threat: Threat, steps: int = 100, n_target_classes: int = 9, restarts: int = 1,
                 alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9, seed: int = 0):
        super().__init__(threat, steps=steps, restarts=restarts, alpha_max=alpha_max, eta=eta, beta=beta, seed=seed)
        self.n_target_classes = positive_int("n_target_classes", n_target_classes)

    def run(self, ctx: AttackContext) -> Tensor:
        if ctx.targeted:
            return super().run(ctx)
        best = BestRuns.start(ctx)  # shared by all targets: each runs on the samples not yet within eps
        for t in top_targets(ctx, self.n_target_classes):
            self._restarts(ctx, best, t)
        return best.x
