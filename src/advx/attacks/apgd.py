"""Auto-PGD: PGD with momentum and a step size that adapts itself.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble
of diverse parameter-free attacks", ICML 2020 (https://arxiv.org/abs/2003.01690),
Algorithm 1. From a random start, with step size eta = 2 * eps and alpha = 0.75::

    z      = P(x_k + eta * step(grad f(x_k)))
    x_k+1  = P(x_k + alpha * (z - x_k) + (1 - alpha) * (x_k - x_k-1))     (x_1 = z)

keeping the best point x_max (highest loss f). At the checkpoints
w_j = ceil(p_j * N), p_0 = 0, p_1 = 0.22, p_j+1 = p_j + max(p_j - p_j-1 - 0.03, 0.06),
eta is halved and the iterate restarts from x_max when

1. fewer than a fraction rho of the steps since the last checkpoint increased f, or
2. eta was not halved at the last checkpoint and f_max has not grown since.

Everything is per sample. An evaluation attack, it stops on a sample as soon as
an iterate is adversarial and returns that iterate; otherwise x_max.

L1 follows l1-APGD of Croce & Hein, "Mind the box: l1-APGD for sparse
adversarial attacks on image classifiers", ICML 2021 (https://arxiv.org/abs/2103.01208):
the step moves the top-k gradient coordinates (those not pinned at the box),
eta starts at eps, and every 4% of the steps the sparsity is re-estimated as
k = ||x_max - x||_0 / 1.5 (rounded down, at least 1); if ||x_max - x||_0 shrank
by over 5% eta is reset to eps and the iterate restarts from x_max, otherwise
eta /= 1.5 (kept in [eps/10, eps]). Simplified here: no momentum for L1 (as in
the authors' reference code), a uniform random start in the L1 ball, and no
"larger-eps" warm-up schedule.

APGD-T (same paper) runs APGD on the targeted DLR loss against each of the
top-k classes other than y in turn, only on samples not yet misclassified.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from advx.attacks.base import (
    Attack,
    AttackContext,
    BestRuns,
    best_of_restarts,
    in_range,
    is_adversarial,
    positive_int,
    top_targets,
)
from advx.attacks.losses import LossFn, dlr, get_loss, margin
from advx.attacks.registry import register
from advx.threat import Threat, per_sample

__all__ = ["APGD", "APGDT", "checkpoints"]


def checkpoints(steps: int) -> list[int]:
    """The iterations w_j = ceil(p_j * steps) at which APGD may halve its step size."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(q * steps, 9)) for q in p[1:] if q <= 1})


@register("apgd-ce", threats=("linf", "l2", "l1", "db"), kind="gradient", budget=("steps", "restarts"),
          options={"loss": "ce"},
          summary="auto-PGD on cross-entropy, self-adapting step (Croce & Hein 2020, arXiv:2003.01690)")
@register("apgd-dlr", threats=("linf", "l2", "l1", "db"), kind="gradient", budget=("steps", "restarts"),
          options={"loss": "dlr"}, summary="auto-PGD on the DLR loss (Croce & Hein 2020, arXiv:2003.01690)")
class APGD(Attack):
    """Auto-PGD (Croce & Hein 2020); l1-APGD (Croce & Hein 2021) for L1 threats.

    Args:
        threat: ``Linf``, ``L2`` or ``L1`` (or any threat with a Linf/L2-like step,
            such as an audio ball with a per-sample radius).
        steps: iterations N per restart (gradient evaluations).
        restarts: random restarts, each only on samples not yet adversarial.
        loss: "ce", "dlr" (needs >= 3 classes, 4 if targeted; on fewer the C&W margin loss is used, with a
            warning), "margin" or a callable.
        rho: fraction of loss-increasing steps below which the step size is halved.
        momentum: alpha of Algorithm 1 (0.75); 1 means no momentum.
    """

    def __init__(self, threat: Threat, steps: int = 100, restarts: int = 1, loss: str | LossFn = "ce",
                 rho: float = 0.75, momentum: float = 0.75, seed: int = 0):
        super().__init__(threat, seed)
        self.steps, self.restarts = positive_int("steps", steps), positive_int("restarts", restarts)
        self.loss = get_loss(loss)
        self.rho = in_range("rho", rho, 0, 1, low_open=True)
        self.momentum = in_range("momentum", momentum, 0, 1, low_open=True,
                                 note=" (alpha of APGD; 1 disables momentum)")

    # -------------------------------------------------------------- restarts
    def run(self, ctx: AttackContext) -> Tensor:
        return best_of_restarts(ctx, self.restarts, lambda idx: self._one_run(ctx, idx, None))

    #: the loss is always taken towards a class (APGD-T's targets), so DLR is the targeted form
    targets_classes = False

    def dlr_fallback(self, num_classes: int, targeted: bool | None = None) -> str | None:
        """Why DLR cannot run on ``num_classes`` (it needs 3, or 4 targeted: Croce & Hein's eq. 6-7) and
        the C&W margin loss replaces it; None when the loss runs as configured."""
        targeted = self.targets_classes if targeted is None else targeted
        need = 4 if targeted else 3
        if self.loss is not dlr or num_classes >= need:
            return None
        return (f"{type(self).__name__}: the {'targeted ' if targeted else ''}DLR loss needs at least {need} classes "
                f"and the model has {num_classes}; using the C&W margin loss instead")

    def _usable_loss(self, num_classes: int, targeted: bool) -> LossFn:
        """The loss, or the margin loss (with a warning) where DLR is undefined, instead of failing the run."""
        note = self.dlr_fallback(num_classes, targeted)
        if note is None:
            return self.loss
        warnings.warn(note, UserWarning, stacklevel=4)
        return margin

    # ------------------------------------------------------------ one run
    def _one_run(self, ctx: AttackContext, idx: Tensor, loss_target: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Algorithm 1 on rows ``idx``: their chosen points, best losses and success."""
        threat, x0 = self.threat, ctx.x[idx]
        y = ctx.y[idx]
        target = ctx.labels(idx)[1] if loss_target is None else loss_target
        sparse = threat.p == 1  # l1-APGD: sparse steps
        n, steps = len(idx), self.steps
        eps = threat.radius(x0)
        eta_max = (1.0 if sparse else 2.0) * eps
        ckpts = set(range(max(int(0.04 * steps), 1), steps, max(int(0.04 * steps), 1))) if sparse \
            else {w for w in checkpoints(steps) if w < steps}

        loss = self._usable_loss(ctx.num_classes, target is not None)

        def loss_fn(rows):
            ya, ta = y[rows], None if target is None else target[rows]
            return lambda z: loss(z, ya, ta)

        act = torch.arange(n, device=x0.device)  # rows of idx still attacked
        x_k = threat.random_start(x0, ctx.generator)
        f_k, grad, logits = ctx.gradient(x_k, loss_fn(act), idx)
        s = {  # per-row state of the active rows
            "x": x_k, "prev": x_k, "grad": grad, "f": f_k, "eta": eta_max.clone(),
            "x_max": x_k.clone(), "g_max": grad.clone(), "f_max": f_k.clone(),
            "incr": torch.zeros(n, device=x0.device), "f_ckpt": f_k.clone(),
            "halved": torch.zeros(n, dtype=torch.bool, device=x0.device),
            "frac": torch.full((n,), 0.2, dtype=x0.dtype, device=x0.device),
            "sp_old": torch.full((n,), float(x0[0].numel()), dtype=x0.dtype, device=x0.device),
        }
        x_out, adv_out = x0.clone(), torch.zeros(n, dtype=torch.bool, device=x0.device)
        f_out = torch.full((n,), torch.inf, dtype=f_k.dtype, device=x0.device)
        last_ckpt = 0

        def rows_of(act: Tensor) -> tuple:
            """What the active rows ``act`` read every iteration: gathered once per set of rows."""
            ida = idx[act]
            return ida, x0[act], eta_max[act], loss_fn(act), *ctx.labels(ida)

        ida, xs, eta_a, loss_a, y_a, t_a = rows_of(act)
        for k in range(steps + 1):
            adv = is_adversarial(logits, y_a, t_a)  # judged at x_k (ctx.adversarial)
            if bool(adv.any()):  # early stop: keep the adversarial iterate
                x_out[act[adv]], adv_out[act[adv]] = s["x"][adv], True
                keep = (~adv).nonzero().squeeze(1)
                act, s = act[keep], {key: v[keep] for key, v in s.items()}
                if len(act) == 0:
                    break
                ida, xs, eta_a, loss_a, y_a, t_a = rows_of(act)
            if k == steps:
                break
            if k > 0 and k in ckpts:
                self._checkpoint(s, xs, eta_a, k - last_ckpt, sparse)
                last_ckpt = k
            # --- the step to x_k+1
            xa = s["x"]
            if sparse:
                x_new = threat.project(xa + per_sample(s["eta"], xa) * threat.step(s["grad"], xa, k=(s["frac"] * xa[0].numel()).floor()), xs)
            else:
                z = threat.project(xa + per_sample(s["eta"], xa) * threat.step(s["grad"], xa), xs)
                a = 1.0 if k == 0 else self.momentum
                x_new = threat.project(xa + a * (z - xa) + (1 - a) * (xa - s["prev"]), xs) if a < 1 else z
            s["prev"], s["x"] = xa, x_new
            if k + 1 < steps:
                f_new, s["grad"], logits = ctx.gradient(x_new, loss_a, ida)
            else:  # the last iterate needs no gradient
                logits = ctx.forward(x_new, ida)
                f_new = loss_a(logits)
            s["incr"] += (f_new > s["f"]).float()
            s["f"] = f_new
            up = f_new > s["f_max"]
            s["f_max"] = torch.where(up, f_new, s["f_max"])
            up_x = per_sample(up, x_new)
            s["x_max"], s["g_max"] = torch.where(up_x, x_new, s["x_max"]), torch.where(up_x, s["grad"], s["g_max"])

        if len(act):
            x_out[act], f_out[act] = s["x_max"], s["f_max"]
        return x_out, f_out, adv_out

    def _checkpoint(self, s: dict, x0: Tensor, eta_max: Tensor, window: int, sparse: bool) -> None:
        """Adapt the step size at a checkpoint; restart the flagged rows from x_max."""
        if sparse:
            sp = (s["x_max"] - x0).reshape(len(x0), -1).ne(0).sum(1).to(x0.dtype)
            flag = sp / s["sp_old"] < 0.95
            s["frac"] = sp / x0[0].numel() / 1.5
            s["eta"] = torch.where(flag, eta_max, s["eta"] / 1.5)
            s["eta"] = torch.minimum(torch.maximum(s["eta"], eta_max / 10), eta_max)
            s["sp_old"] = sp
        else:
            few_increases = s["incr"] < self.rho * window
            stalled = ~s["halved"] & (s["f_max"] <= s["f_ckpt"])
            flag = few_increases | stalled
            s["eta"] = torch.where(flag, s["eta"] / 2, s["eta"])
            s["halved"], s["f_ckpt"] = flag, s["f_max"].clone()
        s["incr"] = torch.zeros_like(s["incr"])
        s["x"] = torch.where(per_sample(flag, s["x"]), s["x_max"], s["x"])
        s["grad"] = torch.where(per_sample(flag, s["x"]), s["g_max"], s["grad"])
        s["f"] = torch.where(flag, s["f_max"], s["f"])


@register("apgd-t", threats=("linf", "l2", "l1", "db"), kind="gradient", budget=("steps", "restarts"),
          summary="auto-PGD, targeted DLR against the top other classes (Croce & Hein 2020, arXiv:2003.01690)")
class APGDT(APGD):
    """APGD-T: targeted APGD on the DLR loss (Croce & Hein 2020).

    Untargeted calls attack, in turn, the ``n_target_classes`` classes with the
    highest clean logits other than y (at most C - 1), each on the samples not
    yet misclassified; success means misclassified. With ``target=`` it runs
    targeted APGD towards that class and success means reaching it.
    """

    targets_classes = True

    def __init__(self, threat: Threat, steps: int = 100, n_target_classes: int = 9, restarts: int = 1,
                 loss: str | LossFn = "dlr", rho: float = 0.75, momentum: float = 0.75, seed: int = 0):
        super().__init__(threat, steps=steps, restarts=restarts, loss=loss, rho=rho, momentum=momentum, seed=seed)
        self.n_target_classes = positive_int("n_target_classes", n_target_classes)

    def run(self, ctx: AttackContext) -> Tensor:
        if ctx.targeted:
            return super().run(ctx)
        best = BestRuns.start(ctx)  # shared by all targets: each runs on the samples still robust
        for t in top_targets(ctx, self.n_target_classes):
            best_of_restarts(ctx, self.restarts, lambda idx, t=t: self._one_run(ctx, idx, t[idx]), best)
        return best.x
