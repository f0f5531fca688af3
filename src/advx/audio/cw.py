"""The Carlini & Wagner audio attack: force a word with the quietest perturbation.

Carlini & Wagner, "Audio Adversarial Examples: Targeted Attacks on
Speech-to-Text", 2018 (https://arxiv.org/abs/1801.01944), section 4: minimise

    ||delta||_2^2 + c * l(x + delta, t)    subject to    dB_x(delta) <= tau

with Adam, starting from a loose bound tau; whenever x + delta is classified as
the target t, tau shrinks to 0.8 * max|delta| and the search continues inside
the smaller ball. Here the model is a classifier, so l is the C&W margin loss
max(max_{j != t} z_j - z_t, -kappa) (Carlini & Wagner 2017); untargeted calls
use max(z_y - max_{j != y} z_j, -kappa). The first tau is the threat's bound,
so the result always satisfies it; the attack returns, per clip, the successful
point with the lowest dB_x it found (or, if none, its last iterate).
"""

from __future__ import annotations

import torch
from torch import Tensor

from advx.attacks.base import Attack, AttackContext
from advx.attacks.losses import margin
from advx.threat import Decibels, per_sample

__all__ = ["CarliniWagnerDB"]


class CarliniWagnerDB(Attack):
    """Minimum-dB attack of Carlini & Wagner (2018) for waveform classifiers.

    Args:
        threat: a :class:`~advx.threat.Decibels` bound; the first tau.
        steps: Adam iterations (one gradient each).
        c: weight of the classification loss against ||delta||^2 / ||x||^2.
        kappa: confidence margin the target must win by.
        rel_lr: Adam's learning rate as a fraction of the current bound tau * max|x|.
        shrink: tau <- shrink * dB_x of each new success (0.8 in the paper).
        min_db: stop working on a clip once tau falls below this (dB).
    """

    minimum_norm = True

    def __init__(self, threat: Decibels, steps: int = 300, c: float = 1.0, kappa: float = 0.0, rel_lr: float = 0.05,
                 shrink: float = 0.8, min_db: float = -80.0, seed: int = 0):
        if not isinstance(threat, Decibels):
            raise TypeError(f"threat must be advx.threat.Decibels (e.g. Decibels(-20)), got {type(threat).__name__}")
        super().__init__(threat, seed)
        if int(steps) < 1:
            raise ValueError(f"steps must be >= 1, got {steps!r}")
        if c <= 0 or kappa < 0 or rel_lr <= 0:
            raise ValueError(f"need c > 0, kappa >= 0 and rel_lr > 0, got c={c}, kappa={kappa}, rel_lr={rel_lr}")
        if not 0 < shrink < 1:
            raise ValueError(f"shrink must be in (0, 1), got {shrink!r}")
        self.steps, self.c, self.kappa, self.rel_lr = int(steps), float(c), float(kappa), float(rel_lr)
        self.shrink, self.min_ratio = float(shrink), 10 ** (float(min_db) / 20)

    def _hinge(self, logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
        return (-margin(logits, y, target)).clamp_min(-self.kappa)  # <= 0 once the criterion holds

    def run(self, ctx: AttackContext) -> Tensor:
        threat: Decibels = self.threat
        x = ctx.x
        n = len(x)
        peak = per_sample(x.reshape(n, -1).abs().amax(1).clamp_min(torch.finfo(x.dtype).tiny), x)
        energy = per_sample(x.reshape(n, -1).pow(2).sum(1).clamp_min(torch.finfo(x.dtype).tiny), x)
        tau = torch.full((n,), threat.eps, dtype=torch.float64, device=x.device)
        delta = torch.zeros_like(x)
        m, v = torch.zeros_like(x), torch.zeros_like(x)
        best = x.clone()
        best_ratio = torch.full((n,), float("inf"), dtype=torch.float64, device=x.device)
        active = ~ctx.initial_success
        b1, b2 = 0.9, 0.999
        for step in range(1, self.steps + 1):
            act = active.nonzero().squeeze(1)
            if len(act) == 0:
                break
            y, target = ctx.labels(act)
            x_cur = threat.project_ratio(x[act] + delta[act], x[act], tau[act])
            _, grad, logits = ctx.gradient(x_cur, lambda z, y=y, t=target: self._hinge(z, y, t), act)
            won = ctx.adversarial(logits, act)
            ratio = threat.distance(x_cur, x[act]).double()
            better = won & (ratio < best_ratio[act])
            best[act[better]] = x_cur[better]
            best_ratio[act[better]] = ratio[better]
            tau[act[won]] = torch.minimum(tau[act[won]], ratio[won]) * self.shrink  # tighten the ball
            active[act[tau[act] < self.min_ratio]] = False
            d = x_cur - x[act]
            g = self.c * grad + 2 * d / energy[act]  # gradient of c * l + ||delta||^2 / ||x||^2
            m[act] = b1 * m[act] + (1 - b1) * g
            v[act] = b2 * v[act] + (1 - b2) * g * g
            m_hat, v_hat = m[act] / (1 - b1**step), v[act] / (1 - b2**step)
            lr = self.rel_lr * per_sample(tau[act], x).to(x.dtype) * peak[act]
            stepped = d - lr * m_hat / (v_hat.sqrt() + 1e-12)
            delta[act] = threat.project_ratio(x[act] + stepped, x[act], tau[act]) - x[act]
        lost = best_ratio == float("inf")
        if bool(lost.any()):  # no success: hand back the last iterate (inside the threat)
            best[lost] = threat.project_ratio(x[lost] + delta[lost], x[lost], tau[lost])
        return best
