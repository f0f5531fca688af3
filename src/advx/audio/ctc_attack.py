"""Targeted attacks on a CTC recogniser: any phrase in, a chosen phrase out.

Stage 1 -- Carlini & Wagner, "Audio Adversarial Examples: Targeted Attacks on
Speech-to-Text", 2018 (https://arxiv.org/abs/1801.01944): minimise the CTC loss of
the target transcription t,

    CTC(f(x + δ), t) + c ||δ||_2^2 / ||x||_2^2     subject to  dB_x(δ) <= τ,

with Adam, τ starting at the threat's bound; whenever the recogniser's greedy
transcription of x + δ is exactly t, τ shrinks to ``shrink`` x (dB_x of that δ)
and the search goes on inside the smaller ball, keeping the quietest success.

Stage 2 (``psycho_steps > 0``) -- Qin, Carlini, Cottrell, Goodfellow & Raffel,
ICML 2019 (https://arxiv.org/abs/1903.10346): from the stage-1 example, minimise
CTC(f(x + δ), t) + α ℓ_θ(x, δ), where ℓ_θ is the mean excess of the perturbation's
PSD over the clip's own masking threshold (:mod:`advx.audio.psycho`). α starts at
``alpha`` and adapts per clip as in the paper: ×1.2 every 20 steps while the
target is still transcribed, ×0.8 every 50 steps while it is not. δ stays in the
threat's dB ball. The kept example is the successful one with the lowest ℓ_θ.

EOT (``transform`` and ``eot > 0``, Athalye et al. 2018; Qin et al. section 4):
each step averages the loss over ``eot`` random transforms of x + δ (room
response, band-pass, gain, noise: :mod:`advx.audio.transforms`), so the example
survives playback; τ then does not shrink (a success on the clean path is not a
success over the air), and :func:`transcription_survival` measures the fraction of
fresh random playbacks after which the target is still transcribed.

Every result reports dB_x, SNR, the share of successes that survive rounding to
16-bit PCM (what a WAV file holds), and the fraction of the perturbation's energy
above the clip's masking threshold, with or without stage 2.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advx.audio.ctc import ctc_loss, encode_text, greedy_decode
from advx.audio.psycho import masking_threshold
from advx.threat import Decibels, db_x, snr_db

__all__ = ["TargetedCTC", "CTCAttackResult", "transcription_survival", "to_pcm16"]


def to_pcm16(x: Tensor) -> Tensor:
    """x rounded to the 16-bit grid, as write_wav stores it."""
    return torch.round(x * 32768).clamp(-32768, 32767) / 32768


@dataclass
class CTCAttackResult:
    """Per clip: the adversarial waveform, what the recogniser hears, and how loud and how audible the change is."""

    x_adv: Tensor  #: (N, T)
    targets: list[str]
    transcriptions: list[str]  #: greedy transcription of x_adv
    success: Tensor  #: (N,) bool: transcription == target exactly
    success_16bit: Tensor  #: (N,) bool: the same after rounding x_adv to 16-bit PCM
    db_x: Tensor  #: (N,) float64, dB_x of the perturbation
    snr: Tensor  #: (N,) float64, dB
    above_threshold: Tensor  #: (N,) fraction of the perturbation's energy above the masking threshold
    gradients: Tensor  #: (N,) forward+backward passes spent on each clip (EOT: per transform)
    seconds: float
    stage1: CTCAttackResult | None = None  #: with a psychoacoustic stage: the C&W stage's own result

    @property
    def success_rate(self) -> float:
        return float(self.success.double().mean()) if len(self.success) else 0.0

    def summary(self) -> dict:
        ok = self.success
        finite = lambda v: v[ok & torch.isfinite(v)]  # noqa: E731
        med = lambda v: float(finite(v).median()) if bool((ok & torch.isfinite(v)).any()) else math.nan  # noqa: E731
        return {
            "clips": len(ok), "success_rate": self.success_rate,
            "success_16bit": float(self.success_16bit.double().mean()) if len(ok) else 0.0,
            "median_db_x": med(self.db_x), "median_snr_db": med(self.snr),
            "median_above_threshold": med(self.above_threshold.double()),
            "mean_gradients": float(self.gradients.double().mean()) if len(ok) else 0.0,
            "seconds": round(self.seconds, 1),
        }


class TargetedCTC:
    """Targeted C&W attack on a CTC recogniser, with the optional psychoacoustic stage and EOT.

    Args:
        threat: a :class:`~advx.threat.Decibels` bound (the first τ; never exceeded).
        steps: stage-1 Adam iterations.
        rel_lr: stage-1 step size as a fraction of the current radius τ · max|x|.
        c: weight of ||δ||^2 / ||x||^2 against the CTC loss.
        shrink: τ <- shrink · dB_x of each new success (0.8 in C&W 2018).
        min_db: stop shrinking a clip below this (dB); -60 keeps examples above the 16-bit grid.
        psycho_steps: stage-2 iterations (0: C&W only).
        alpha: the initial weight of the masking loss in stage 2.
        psycho_lr: stage-2 Adam step as a fraction of the stage-1 perturbation's peak.
        transform, eot: random playback transforms and how many per step (EOT); 0: none.
        seed: seeds the EOT draws.
    """

    def __init__(self, threat: Decibels, steps: int = 300, rel_lr: float = 0.05, c: float = 0.0,
                 shrink: float = 0.8, min_db: float = -60.0, psycho_steps: int = 0, alpha: float = 1.0,
                 psycho_lr: float = 0.05, transform: nn.Module | None = None, eot: int = 0, seed: int = 0):
        if not isinstance(threat, Decibels):
            raise TypeError(f"threat must be advx.threat.Decibels (e.g. Decibels(-30)), got {type(threat).__name__}")
        if int(steps) < 1 or int(psycho_steps) < 0 or int(eot) < 0:
            raise ValueError(f"need steps >= 1, psycho_steps >= 0, eot >= 0; got {steps}, {psycho_steps}, {eot}")
        if not 0 < shrink < 1 or rel_lr <= 0 or c < 0 or alpha <= 0 or psycho_lr <= 0:
            raise ValueError("need 0 < shrink < 1, rel_lr > 0, c >= 0, alpha > 0, psycho_lr > 0")
        if eot and transform is None:
            raise ValueError("eot > 0 needs a transform (e.g. advx.audio.transforms.over_the_air())")
        self.threat, self.steps, self.rel_lr, self.c = threat, int(steps), float(rel_lr), float(c)
        self.shrink, self.min_ratio = float(shrink), 10 ** (float(min_db) / 20)
        self.psycho_steps, self.alpha, self.psycho_lr = int(psycho_steps), float(alpha), float(psycho_lr)
        self.transform, self.eot, self.seed = transform, int(eot), int(seed)

    def __repr__(self) -> str:
        return (f"TargetedCTC({self.threat!r}, steps={self.steps}, psycho_steps={self.psycho_steps}, "
                f"eot={self.eot})")

    # ----------------------------------------------------------------- pieces
    def _loss(self, model, z: Tensor, targets: list[Tensor], g: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Per-clip CTC loss (averaged over EOT draws) and the log-probabilities of the plain z."""
        if self.eot:
            losses = [ctc_loss(model(self.transform(z, g)), targets) for _ in range(self.eot)]
            with torch.no_grad():
                lp = model(z)
            return torch.stack(losses).mean(0), lp
        lp = model(z)
        return ctc_loss(lp, targets), lp

    def __call__(self, model: nn.Module, x: Tensor, targets: list[str] | str,
                 generator: torch.Generator | None = None) -> CTCAttackResult:
        t0 = time.time()
        if x.dim() != 2:
            raise ValueError(f"x must be waveforms of shape (N, T), got {tuple(x.shape)}")
        n = len(x)
        targets = [targets] * n if isinstance(targets, str) else list(targets)
        if len(targets) != n:
            raise ValueError(f"got {len(targets)} target transcriptions for {n} clips")
        ids = [encode_text(t) for t in targets]
        texts = [" ".join(t.lower().split()) for t in targets]
        g = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        was = model.training
        model.eval()
        try:
            with torch.enable_grad():
                x1, g1, x_adv, grads, t1 = self._run(model, x.detach(), ids, texts, g)
            masking = masking_threshold(x)
            result = _judge(model, x, x_adv, texts, grads, masking, time.time() - t0)
            if self.psycho_steps:
                result.stage1 = _judge(model, x, x1, texts, g1, masking, t1 - t0)
        finally:
            model.train(was)
        return result

    def _run(self, model, x: Tensor, ids: list[Tensor], texts: list[str], g) -> tuple[Tensor, Tensor]:
        threat, n = self.threat, len(x)
        peak = x.abs().amax(1).clamp_min(1e-12)
        energy = x.pow(2).sum(1).clamp_min(1e-12)
        tau = torch.full((n,), threat.eps, dtype=torch.float64)
        delta = torch.zeros_like(x)
        m, v = torch.zeros_like(x), torch.zeros_like(x)
        best = x.clone()
        best_ratio = torch.full((n,), math.inf, dtype=torch.float64)
        active = torch.ones(n, dtype=torch.bool)
        grads = torch.zeros(n, dtype=torch.long)
        per = max(1, self.eot)
        b1, b2 = 0.9, 0.999
        for step in range(1, self.steps + 1):
            act = active.nonzero().squeeze(1)
            if len(act) == 0:
                break
            xa = x[act]
            z = threat.project_ratio(xa + delta[act], xa, tau[act]).requires_grad_(True)
            loss, lp = self._loss(model, z, [ids[i] for i in act.tolist()], g)
            d = z - xa
            total = loss + self.c * d.pow(2).sum(1) / energy[act]
            (grad,) = torch.autograd.grad(total.sum(), z)
            grads[act] += per
            z = z.detach()
            won = torch.tensor([h == texts[i] for h, i in zip(greedy_decode(lp.detach()), act.tolist())])
            ratio = threat.distance(z, xa).double()
            better = won & (ratio < best_ratio[act])
            best[act[better]] = z[better]
            best_ratio[act[better]] = ratio[better]
            if not self.eot:  # tighten the ball around each success
                tau[act[won]] = torch.minimum(tau[act[won]], ratio[won]) * self.shrink
                active[act[tau[act] < self.min_ratio]] = False
            m[act] = b1 * m[act] + (1 - b1) * grad
            v[act] = b2 * v[act] + (1 - b2) * grad * grad
            m_hat, v_hat = m[act] / (1 - b1**step), v[act] / (1 - b2**step)
            lr = (self.rel_lr * tau[act] * peak[act].double()).to(x.dtype)[:, None]
            stepped = (z - xa) - lr * m_hat / (v_hat.sqrt() + 1e-12)
            delta[act] = threat.project_ratio(xa + stepped, xa, tau[act]) - xa
        lost = best_ratio == math.inf
        if bool(lost.any()):  # no success: the last iterate (inside the threat)
            best[lost] = threat.project_ratio(x[lost] + delta[lost], x[lost], tau[lost])
        stage1, grads1, t1 = best.clone(), grads.clone(), time.time()
        if self.psycho_steps and bool((~lost).any()):
            won = (~lost).nonzero().squeeze(1)
            best[won], spent = self._psycho(model, x[won], best[won], [ids[i] for i in won.tolist()],
                                            [texts[i] for i in won.tolist()], g)
            grads[won] += spent
        return stage1, grads1, best, grads, t1

    def _psycho(self, model, x: Tensor, start: Tensor, ids: list[Tensor], texts: list[str], g):
        """Stage 2 (Qin et al. 2019): CTC + α · masking loss, α adapted per clip; the best masked success."""
        threat, n = self.threat, len(x)
        masking = masking_threshold(x)
        delta = (start - x).clone()
        m, v = torch.zeros_like(x), torch.zeros_like(x)
        alpha = torch.full((n,), self.alpha)
        best = start.clone()
        with torch.no_grad():
            best_mask = masking.loss(start - x)
        # steps relative to the stage-1 perturbation's own peak: that example sits just inside the
        # target's region (C&W shrank the ball until it barely held), so steps as large as the ball
        # would throw it out at once
        lr = (self.psycho_lr * (start - x).abs().amax(1).clamp_min(1e-8))[:, None]
        spent = torch.zeros(n, dtype=torch.long)
        b1, b2 = 0.9, 0.999
        for step in range(1, self.psycho_steps + 1):
            z = threat.project(x + delta, x).requires_grad_(True)
            loss, lp = self._loss(model, z, ids, g)
            mask = masking.loss(z - x)
            (grad,) = torch.autograd.grad((loss + alpha * mask).sum(), z)
            spent += max(1, self.eot)
            z = z.detach()
            won = torch.tensor([h == t for h, t in zip(greedy_decode(lp.detach()), texts)])
            better = won & (mask.detach() < best_mask)
            best[better], best_mask[better] = z[better], mask.detach()[better]
            if step % 20 == 0:
                alpha = torch.where(won, alpha * 1.2, alpha)
            if step % 50 == 0:
                alpha = torch.where(~won, alpha * 0.8, alpha)
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad * grad
            stepped = (z - x) - lr * (m / (1 - b1**step)) / ((v / (1 - b2**step)).sqrt() + 1e-12)
            delta = threat.project(x + stepped, x) - x
        return best, spent


@torch.no_grad()
def _judge(model, x: Tensor, x_adv: Tensor, texts: list[str], grads: Tensor, masking, seconds: float) -> CTCAttackResult:
    heard = greedy_decode(model(x_adv))
    heard16 = greedy_decode(model(to_pcm16(x_adv)))
    return CTCAttackResult(
        x_adv=x_adv, targets=list(texts), transcriptions=heard,
        success=torch.tensor([h == t for h, t in zip(heard, texts)], dtype=torch.bool),
        success_16bit=torch.tensor([h == t for h, t in zip(heard16, texts)], dtype=torch.bool),
        db_x=db_x(x_adv, x), snr=snr_db(x_adv, x), above_threshold=masking.above(x_adv - x),
        gradients=grads, seconds=seconds)


@torch.no_grad()
def transcription_survival(model: nn.Module, x_adv: Tensor, targets: list[str], transform: nn.Module,
                           draws: int = 16, seed: int = 1234) -> Tensor:
    """Per clip, the fraction of ``draws`` fresh random transforms after which the target is still transcribed.

    Use a seed the attack never saw.
    """
    g = torch.Generator().manual_seed(int(seed))
    texts = [" ".join(t.lower().split()) for t in targets]
    hits = torch.zeros(len(x_adv), dtype=torch.float64)
    for _ in range(int(draws)):
        heard = greedy_decode(model(transform(x_adv, g)))
        hits += torch.tensor([h == t for h, t in zip(heard, texts)], dtype=torch.float64)
    return hits / max(1, int(draws))
