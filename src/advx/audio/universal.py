"""Universal audio perturbations: one waveform δ that, added to any clip, changes what the model hears.

Neekhara, Hussain, Pandey, Dubnov, McAuley & Koushanfar, "Universal Adversarial
Perturbations for Speech Recognition Systems", Interspeech 2019
(https://arxiv.org/abs/1905.03828), after Moosavi-Dezfooli et al. (CVPR 2017):
a single perturbation of bounded loudness, learned on a set of training clips,
that fools the model on clips -- and voices -- it never saw. Here δ is learned by
projected sign-gradient descent on the mean loss over random mini-batches of the
training clips (the loss of each clip clamped at -κ, so that clips already fooled
stop pulling, which is what Neekhara et al.'s per-clip update achieves), δ kept in
the L∞ ball of radius r = 10^(db/20) (dB relative to full scale, the same for
every clip: a universal perturbation cannot follow each clip's loudness), and every
x + δ clipped to [-1, 1].

Objectives (``loss(model, x, idx) -> per-clip loss to minimise``):

* :func:`kws_objective` -- a keyword spotter: targeted (every clip heard as class t)
  or untargeted (every clip heard as anything but its label), C&W margin loss.
* :func:`ctc_objective` -- a CTC recogniser: targeted (every clip transcribed as the
  target text, CTC loss) or untargeted (minus the CTC loss of each clip's clean
  transcription, clamped at ``cap``).

The result is judged on held-out clips by the caller (:func:`apply_universal`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from advx.attacks.losses import margin
from advx.audio.ctc import ctc_loss, encode_text

__all__ = ["UniversalResult", "universal_perturbation", "apply_universal", "kws_objective", "ctc_objective"]

Objective = Callable[[nn.Module, Tensor, Tensor], Tensor]


@dataclass
class UniversalResult:
    delta: Tensor  #: (T,) the perturbation
    db: float  #: its bound, dB relative to full scale (peak |δ| <= 10^(db/20))
    steps: int
    history: list[dict] = field(default_factory=list)  #: every ``log_every`` steps: mean training loss
    seconds: float = 0.0

    @property
    def dbfs(self) -> float:
        """The peak of δ in dB relative to full scale."""
        peak = float(self.delta.abs().max())
        return 20 * math.log10(peak) if peak > 0 else -math.inf


def apply_universal(delta: Tensor, x: Tensor) -> Tensor:
    """x + δ clipped to [-1, 1]; δ (T,) is cut or zero-padded to x's length."""
    t = x.shape[-1]
    d = delta[:t] if len(delta) >= t else torch.nn.functional.pad(delta, (0, t - len(delta)))
    return (x + d.to(x)).clamp(-1, 1)


def universal_perturbation(model: nn.Module, x: Tensor, objective: Objective, db: float = -30.0, steps: int = 300,
                           batch: int = 32, lr: float = 0.02, seed: int = 0, log_every: int = 25) -> UniversalResult:
    """Learn one δ of peak at most 10^(db/20) on clips x (N, T) (see the module docstring).

    ``lr``: the sign step as a fraction of the radius (decays linearly to a tenth).
    """
    if x.dim() != 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch of waveforms (N, T), got {tuple(x.shape)}")
    if not math.isfinite(db):
        raise ValueError(f"db must be a finite number of dB re full scale, got {db!r}")
    if int(steps) < 1 or int(batch) < 1 or lr <= 0:
        raise ValueError(f"need steps >= 1, batch >= 1, lr > 0; got {steps}, {batch}, {lr}")
    t0 = time.time()
    radius = 10 ** (db / 20)
    g = torch.Generator().manual_seed(int(seed))
    delta = torch.zeros(x.shape[1], dtype=x.dtype)
    was = model.training
    model.eval()
    history, running, count = [], 0.0, 0
    try:
        for step in range(1, int(steps) + 1):
            idx = torch.randint(len(x), (min(int(batch), len(x)),), generator=g)
            d = delta.clone().requires_grad_(True)
            with torch.enable_grad():
                loss = objective(model, (x[idx] + d).clamp(-1, 1), idx).mean()
                (grad,) = torch.autograd.grad(loss, d)
            step_size = lr * radius * (1 - 0.9 * (step - 1) / max(1, int(steps) - 1))
            delta = (delta - step_size * grad.sign()).clamp(-radius, radius)
            running, count = running + float(loss.detach()), count + 1
            if step % int(log_every) == 0 or step == int(steps):
                history.append({"step": step, "loss": running / count})
                running, count = 0.0, 0
    finally:
        model.train(was)
    return UniversalResult(delta.detach(), float(db), int(steps), history, time.time() - t0)


def kws_objective(labels: Tensor, target: int | None = None, kappa: float = 2.0) -> Objective:
    """Margin loss for a keyword spotter: targeted at class ``target`` or untargeted away from ``labels``."""

    def loss(model, z, idx):
        y = labels[idx]
        t = None if target is None else torch.full_like(y, int(target))
        return (-margin(model(z), y, t)).clamp_min(-kappa)

    return loss


def ctc_objective(texts: list[str], target: str | None = None, cap: float = 30.0) -> Objective:
    """CTC objective: towards ``target`` for every clip, or (None) away from each clip's ``texts``, at most ``cap``."""
    ids = [encode_text(t) for t in texts]
    goal = None if target is None else encode_text(target)

    def loss(model, z, idx):
        lp = model(z)
        if goal is not None:
            return ctc_loss(lp, [goal] * len(z))
        return -ctc_loss(lp, [ids[i] for i in idx.tolist()]).clamp(max=cap)

    return loss
