"""Untargeted black-box attack on a speech recogniser: change its transcription, quietly.

An evolutionary search in the spirit of Alzantot, Balaji & Srivastava, "Did you
hear that?", 2018 (https://arxiv.org/abs/1801.00554) and of Taori, Kamsetty, Chu
& Vemuri, "Targeted Adversarial Examples for Black Box Audio Systems", 2019
(https://arxiv.org/abs/1805.07820), who evolve perturbations of a clip against a
recogniser that returns only text, with an edit distance as fitness. Here the
goal is untargeted: any transcription other than the clean one. For a clip x
with clean transcription c and a ``Decibels`` threat of radius r = peak(x) * 10**(db/20):

1. the population starts at ``population`` corners of the ball, delta = r * sign(u),
   u uniform noise (a corner carries the most energy the L-infinity bound allows);
2. every member is transcribed (one query each) and scored: fitness = WER(h, c)
   when its transcription h differs from c -- a success: the search stops at once --
   and otherwise, with ``fitness="confidence"``, minus the recogniser's posterior
   probability of c (a score-based black box), or 0 with ``fitness="wer"`` (words
   only: the search is then a random walk until the first change);
3. the fittest member (elite) survives, unqueried again; each other child takes two
   parents drawn from the fitter half (truncation selection: the posteriors are
   tiny numbers whose scale a softmax would need tuning for), mixes them block by block
   (uniform crossover over blocks of ``block`` samples) and re-draws the sign of each
   block with probability ``mutation_p``;
4. every candidate is projected by the threat (and kept on the 16-bit grid when
   the clip is, so the WAV written from it transcribes the same).

``max_queries`` bounds the transcriptions per clip, the clean one included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from advx.audio.asr import SphinxASR, wer
from advx.threat import Decibels, db_x, snr_db

__all__ = ["TranscriptionAttack", "TranscriptionResult"]


@dataclass
class TranscriptionResult:
    """One clip's outcome: the adversarial waveform, both transcriptions and the loudness of the change."""

    x_adv: Tensor
    clean: str
    adversarial: str
    success: bool
    wer: float
    db_x: float
    snr: float
    queries: int
    seconds: float


def _on_grid(x: Tensor) -> bool:
    s = x.double() * 32768.0
    return bool((s == s.round()).all())


class TranscriptionAttack:
    """Evolutionary black-box attack that changes a recogniser's transcription under a dB bound.

    Args:
        threat: ``Decibels(db)``: every returned |delta| <= 10**(db/20) * peak(x).
        max_queries: transcriptions allowed per clip, the clean one included.
        population: candidates per generation (one query each).
        fitness: "confidence" (words + the recogniser's posterior of the clean words) or "wer" (words only).
        block: samples per crossover/mutation block (160 = 10 ms at 16 kHz).
        mutation_p: probability of re-drawing a block's signs in a child.
        seed: seed of the search.
    """

    def __init__(self, threat: Decibels, max_queries: int = 100, population: int = 6, fitness: str = "confidence",
                 block: int = 160, mutation_p: float = 0.1, seed: int = 0):
        if not isinstance(threat, Decibels):
            raise TypeError(f"threat must be advx.audio.Decibels(db), got {type(threat).__name__}")
        if int(population) < 2:
            raise ValueError(f"population must be >= 2, got {population!r}")
        if int(max_queries) < 2:
            raise ValueError(f"max_queries must be >= 2 (the clean transcription and one candidate), got {max_queries!r}")
        if fitness not in ("confidence", "wer"):
            raise ValueError(f"fitness must be 'confidence' or 'wer' (words only), got {fitness!r}")
        if int(block) < 1 or not 0 < mutation_p <= 1:
            raise ValueError(f"need block >= 1 and 0 < mutation_p <= 1, got block={block!r}, mutation_p={mutation_p!r}")
        self.threat, self.fitness = threat, fitness
        self.max_queries, self.population, self.block = int(max_queries), int(population), int(block)
        self.mutation_p, self.seed = float(mutation_p), int(seed)

    def _place(self, cand: Tensor, x: Tensor, grid: bool) -> Tensor:
        cand = self.threat.project(cand, x.expand_as(cand))
        if grid:  # truncate delta towards zero on the 16-bit grid: never larger, so still inside
            cand = x + torch.trunc((cand.double() - x.double()) * 32768.0).div(32768.0).to(x.dtype)
            cand = self.threat.project(cand, x.expand_as(cand))
        return cand

    def _signs(self, n: int, t: int, g: torch.Generator, like: Tensor) -> Tensor:
        return torch.randint(0, 2, (n, t), generator=g).to(like.dtype).mul(2).sub(1)

    def _score(self, asr: SphinxASR, pop: Tensor, clean: str, left: int) -> tuple[Tensor, Tensor, list[str]]:
        texts, fit = [], []
        for member in pop[:left]:  # one query each, never more than the budget leaves
            h, p = asr.with_confidence(member)
            texts.append(h)
            fit.append(wer(h, clean) if h != clean else (-p if self.fitness == "confidence" else 0.0))
            if h != clean:  # a success: stop paying for queries
                break
        return pop[: len(texts)], torch.tensor(fit, dtype=torch.float64), texts

    def __call__(self, asr: SphinxASR, x: Tensor) -> TranscriptionResult:
        """Attack one clip ``x`` (T,) of floats in [-1, 1]; ``asr`` is a :class:`SphinxASR` (or alike)."""
        if not isinstance(x, Tensor) or x.dim() != 1 or not x.is_floating_point():
            raise ValueError("x must be one float waveform of shape (T,) (attack clips one at a time)")
        start, q0 = time.perf_counter(), asr.queries
        budget = self.max_queries if asr.remaining is None else min(self.max_queries, asr.remaining)
        if budget < 2:
            raise ValueError(f"the attack needs 2 queries or more (clean + one candidate); the recogniser has {budget} left")
        g = torch.Generator().manual_seed(self.seed)
        xb, grid = x[None], _on_grid(x)
        clean, _ = asr.with_confidence(x)
        r = self.threat.radius(xb).to(x.dtype)  # (1,)
        k, t, nb = self.population, x.shape[0], -(-x.shape[0] // self.block)
        pop = self._place(xb + r * self._signs(k, t, g, x), xb, grid)
        pop, fit, texts = self._score(asr, pop, clean, budget - 1)
        while True:
            e = int(fit.argmax())
            left = budget - (asr.queries - q0)
            if texts[e] != clean or left <= 0:
                break
            key = fit + 1e-12 * torch.rand(len(fit), generator=g, dtype=fit.dtype)  # ties broken at random
            top = key.argsort(descending=True)[: -(-len(fit) // 2)]  # truncation selection: the fitter half
            parents = top[torch.randint(0, len(top), (2 * (k - 1),), generator=g)]
            pa, pb = pop[parents[: k - 1]] - xb, pop[parents[k - 1:]] - xb
            take_a = (torch.rand(k - 1, nb, generator=g) < 0.5).repeat_interleave(self.block, 1)[:, :t]
            flip = (torch.rand(k - 1, nb, generator=g) < self.mutation_p).repeat_interleave(self.block, 1)[:, :t]
            child = torch.where(take_a, pa, pb)
            child = torch.where(flip, r * self._signs(k - 1, t, g, x), child)
            child, cfit, ctexts = self._score(asr, self._place(xb + child, xb, grid), clean, left)
            pop, fit, texts = torch.cat([pop[e:e + 1], child]), torch.cat([fit[e:e + 1], cfit]), [texts[e], *ctexts]
        e = int(fit.argmax())
        best, best_text = pop[e], texts[e]
        success = best_text != clean
        return TranscriptionResult(
            x_adv=best, clean=clean, adversarial=best_text, success=success, wer=wer(best_text, clean),
            db_x=float(db_x(best[None], xb)), snr=float(snr_db(best[None], xb)),
            queries=asr.queries - q0, seconds=time.perf_counter() - start)
