"""Black-box genetic attack on speech classifiers (scores only, under a query budget).

Alzantot, Balaji & Srivastava, "Did you hear that? Adversarial Examples Against
Automatic Speech Recognition", 2018 (https://arxiv.org/abs/1801.00554),
Algorithm 1. A population of ``population`` candidates starts as the clip plus
random noise inside the threat. Each generation:

1. fitness of every member, from the model's scores: in the paper the log-probability
   of the target (``fitness="logprob"``); by default here the C&W logit margin, which
   keeps improving where a confident softmax saturates (untargeted: the margin of the
   best other class over the label);
2. the elite (fittest member) survives unchanged; stop if it already succeeds;
3. every other child takes two parents drawn with probability softmax(fitness / temperature),
   mixes them coordinate by coordinate (uniform crossover), and mutates each coordinate
   with probability p by uniform noise in [-r, r] (r = the threat's radius), then is
   projected into the threat;
4. the mutation probability follows the paper's momentum rule
   p <- alpha * p + beta / |f_elite - f_elite_previous|, kept in [p_min, p_max] (the cap
   is ours: without it a generation whose elite did not change sets p = 1).

Only forward passes (``ctx.forward``) are used: ``population`` queries per clip and
generation; the budget ``max_queries`` bounds them per clip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from advx.attacks.base import Attack, AttackContext
from advx.attacks.losses import margin
from advx.threat import Linf

__all__ = ["GeneticAttack"]


class GeneticAttack(Attack):
    """Genetic black-box attack of Alzantot et al. (2018).

    Args:
        threat: an L-infinity-type ball (``Decibels`` for audio, or ``Linf``).
        population: candidates per clip (the paper uses 10-20).
        max_queries: forward passes allowed per clip (generations = max_queries // population).
        mutation_p: initial per-coordinate mutation probability.
        temperature: softmax temperature of parent selection.
        alpha, beta, p_min, p_max: momentum update of the mutation probability and its range.
        fitness: "margin" (default; the C&W logit margin, which does not saturate when the softmax
            does) or "logprob" (the paper: log-probability of the target, or minus that of the label).
    """

    def __init__(self, threat: Linf, population: int = 20, max_queries: int = 4000, mutation_p: float = 0.005,
                 temperature: float = 0.2, alpha: float = 0.9, beta: float = 0.001, p_min: float = 0.0005,
                 p_max: float = 0.1, fitness: str = "margin", seed: int = 0):
        if not isinstance(threat, Linf):
            raise TypeError(f"threat must be an L-infinity ball (Decibels or Linf), got {type(threat).__name__}")
        super().__init__(threat, seed)
        if int(population) < 2:
            raise ValueError(f"population must be >= 2, got {population!r}")
        if int(max_queries) < int(population):
            raise ValueError(f"max_queries ({max_queries}) must allow one generation of {population} members")
        if not (0 < p_min <= mutation_p <= p_max <= 1) or temperature <= 0:
            raise ValueError("need 0 < p_min <= mutation_p <= p_max <= 1 and temperature > 0")
        if fitness not in ("logprob", "margin"):
            raise ValueError(f"fitness must be 'logprob' (the paper's) or 'margin' (C&W logit margin), got {fitness!r}")
        self.fitness = fitness
        self.population, self.max_queries = int(population), int(max_queries)
        self.mutation_p, self.temperature = float(mutation_p), float(temperature)
        self.alpha, self.beta, self.p_min, self.p_max = float(alpha), float(beta), float(p_min), float(p_max)

    def _fitness(self, logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
        if self.fitness == "margin":
            flat = margin(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                          None if target is None else target.reshape(-1))
            return flat.reshape(y.shape)
        logp = F.log_softmax(logits, dim=-1)
        if target is not None:
            return logp.gather(-1, target[..., None]).squeeze(-1)
        return -logp.gather(-1, y[..., None]).squeeze(-1)

    def _rand(self, shape, ctx: AttackContext, like: Tensor) -> Tensor:
        g = ctx.generator
        return torch.rand(shape, generator=g, device=g.device, dtype=like.dtype).to(like.device)

    def run(self, ctx: AttackContext) -> Tensor:
        threat, x = self.threat, ctx.x
        k = self.population
        shape = x.shape[1:]
        out = x.clone()
        act = (~ctx.initial_success).nonzero().squeeze(1)
        if len(act) == 0:
            return out
        xa = x[act]
        r = threat.radius(xa).reshape(-1, 1, *([1] * len(shape)))  # (B, 1, ...)
        rep = lambda t: t.repeat_interleave(k, 0)  # noqa: E731 -- (B, ...) -> (B*k, ...)
        pop = xa[:, None] + (2 * self._rand((len(act), k, *shape), ctx, xa) - 1) * r
        pop = threat.project(pop.reshape(-1, *shape), rep(xa)).reshape(len(act), k, *shape)
        p = torch.full((len(act),), self.mutation_p, dtype=x.dtype, device=x.device)
        prev = None
        for _ in range(self.max_queries // k):
            y, target = ctx.labels(act)
            logits = ctx.forward(pop.reshape(-1, *shape), rep(act)).reshape(len(act), k, -1)
            fit = self._fitness(logits, y[:, None].expand(-1, k), None if target is None else target[:, None].expand(-1, k))
            e = fit.argmax(1)
            rows = torch.arange(len(act), device=x.device)
            elite, elite_fit = pop[rows, e], fit[rows, e]
            won = ctx.adversarial(logits[rows, e], act)
            out[act] = elite
            if bool(won.all()):
                return out
            keep = ~won  # clips already fooled stop here
            act, xa, pop, fit, elite, elite_fit, r, p = (t[keep] for t in (act, xa, pop, fit, elite, elite_fit, r, p))
            prev = None if prev is None else prev[keep]
            b = len(act)
            probs = torch.softmax(fit / self.temperature, dim=1)
            draws = torch.multinomial(probs, 2 * (k - 1), replacement=True, generator=ctx.generator)
            rows = torch.arange(b, device=x.device)[:, None]
            p1, p2 = pop[rows, draws[:, : k - 1]], pop[rows, draws[:, k - 1:]]
            mix = self._rand((b, k - 1, *shape), ctx, xa) < 0.5
            child = torch.where(mix, p1, p2)
            mutate = self._rand((b, k - 1, *shape), ctx, xa) < p.reshape(-1, 1, *([1] * len(shape)))
            noise = (2 * self._rand((b, k - 1, *shape), ctx, xa) - 1) * r
            child = torch.where(mutate, child + noise, child)
            child = threat.project(child.reshape(-1, *shape), xa.repeat_interleave(k - 1, 0)).reshape(b, k - 1, *shape)
            pop = torch.cat([elite[:, None], child], dim=1)
            if prev is not None:  # momentum mutation update (the paper's rule)
                change = (elite_fit - prev).abs().clamp_min(1e-12)
                p = (self.alpha * p + self.beta / change).clamp(self.p_min, self.p_max)
            prev = elite_fit
        return out
