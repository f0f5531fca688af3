"""SPSA: PGD driven by a gradient estimated from scores only.

Uesato, O'Donoghue, van den Oord & Kohli, "Adversarial Risk and the Dangers of
Evaluating Against Weak Attacks", ICML 2018 (https://arxiv.org/abs/1802.05666),
after Spall's Simultaneous Perturbation Stochastic Approximation (1992).

The gradient of the loss at x is estimated from ``samples`` antithetic pairs of
Rademacher directions v in {-1, +1}^d:
``g = mean_v (L(x + delta v) - L(x - delta v)) / (2 delta) * v``.

This module also holds the small interface that turns PGD into a score-based
attack: a :class:`GradientEstimator` answers where PGD asks for a gradient
(its ``_gradient`` hook), and spends only counted forwards (``ctx.forward``). :class:`EstimatedPGD` runs PGD with any estimator.
Unlike Uesato et al., who step with Adam, the update is PGD's (the threat's
steepest-ascent step, sign for Linf).

Queries per sample and restart: ``steps * (2 * samples + 1) + 1`` (each step
judges the current point once), plus the contract's 2; ``result.gradients == 0``.
``queries=`` makes it a hard per-sample budget for the whole call
(``result.queries <= queries``): ``steps`` is lowered to what fits, and the
default number of pairs too when the budget cannot hold one step of them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from advx.attacks.base import CONTRACT_QUERIES, AttackContext, in_range, positive_int, query_budget
from advx.attacks.losses import LossFn
from advx.attacks.pgd import PGD
from advx.attacks.registry import register
from advx.threat import Threat

__all__ = ["GradientEstimator", "SPSAGradient", "EstimatedPGD", "SPSA"]


class GradientEstimator:
    """Estimates d loss / d x from counted forwards; antithetic pairs of ``directions``.

    Subclasses implement :meth:`directions`: (k, *x.shape) search directions.
    ``batch_size`` caps the rows of one model call.
    """

    def __init__(self, samples: int, size: float, batch_size: int = 4096):
        self.samples = positive_int("samples", samples)
        self.size = in_range("the finite-difference size (delta, sigma)", size, 0, low_open=True)
        self.batch_size = positive_int("batch_size", batch_size)

    def directions(self, k: int, x: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def __call__(self, ctx: AttackContext, x: Tensor, loss_fn: Callable[[Tensor], Tensor],
                 idx: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(loss, estimated gradient, logits) at ``x`` (rows ``idx`` of the batch)."""
        n = len(x)
        if idx is None:
            idx = torch.arange(n, device=x.device)
        logits = ctx.forward(x, idx)
        loss = loss_fn(logits)
        grad = torch.zeros_like(x)
        per_call = max(1, self.batch_size // max(2 * n, 1))  # direction pairs per model call
        done = 0
        while done < self.samples:
            k = min(per_call, self.samples - done)
            v = self.directions(k, x, ctx.generator)  # (k, n, ...)
            z = torch.cat([x[None] + self.size * v, x[None] - self.size * v]).reshape(2 * k * n, *x.shape[1:])
            out = ctx.forward(z, idx.repeat(2 * k)).reshape(2 * k, n, -1)
            diff = torch.stack([loss_fn(out[j]) - loss_fn(out[k + j]) for j in range(k)])  # (k, n)
            grad += (diff.reshape(k, n, *([1] * (x.dim() - 1))) * v).sum(0)
            done += k
        return loss, grad / (2 * self.size * self.samples), logits


class SPSAGradient(GradientEstimator):
    """SPSA: Rademacher directions, finite-difference size ``delta``."""

    def __init__(self, samples: int = 64, delta: float = 0.01, batch_size: int = 4096):
        super().__init__(samples, delta, batch_size)

    def directions(self, k: int, x: Tensor, generator: torch.Generator) -> Tensor:
        u = torch.rand((k, *x.shape), generator=generator, device=generator.device)
        return (u.lt(0.5).to(x.dtype) * 2 - 1).to(x.device)


def steps_within(queries: int, samples: int, restarts: int = 1) -> int:
    """The most PGD steps on ``samples`` antithetic pairs whose forwards fit ``queries`` per sample (contract included).

    Each restart spends ``steps * (2 * samples + 1) + 1``; ValueError when not even one step fits.
    """
    per_step = 2 * samples + 1
    steps = ((queries - CONTRACT_QUERIES) // restarts - 1) // per_step
    if steps < 1:
        least = CONTRACT_QUERIES + restarts * (per_step + 1)
        raise ValueError(f"queries={queries} does not fit one step of {samples} antithetic pairs ({per_step} forwards "
                         f"a step, +1 a restart, +{CONTRACT_QUERIES} for the clean forward and the final judgement); "
                         f"give queries >= {least}{' or fewer samples' if samples > 1 else ''}")
    return steps


def default_samples(default: int, queries: int | None, restarts: int = 1) -> int:
    """``default`` antithetic pairs, or fewer when a ``queries`` budget cannot hold one step of them."""
    if queries is None:
        return default
    restarts = positive_int("restarts", restarts)
    per_run = (query_budget(queries, restarts) - CONTRACT_QUERIES) // restarts
    return max(1, min(default, (per_run - 2) // 2))  # one step (2 s + 1) and the run's final judgement


class EstimatedPGD(PGD):
    """PGD with gradients estimated from scores by ``estimator`` (any :class:`GradientEstimator`).

    Other arguments are PGD's (steps, restarts, rel_step_size, random_start, loss, momentum).
    ``queries`` (optional) is a hard per-sample budget for the whole call; ``steps`` is lowered to fit it.
    """

    def __init__(self, threat: Threat, estimator: GradientEstimator, steps: int = 40, restarts: int = 1,
                 rel_step_size: float | None = None, random_start: bool = True, loss: str | LossFn = "margin",
                 momentum: float = 0.0, seed: int = 0, queries: int | None = None):
        if not isinstance(estimator, GradientEstimator):
            raise TypeError(f"estimator must be a GradientEstimator (SPSAGradient, NESGradient), got {type(estimator).__name__}")
        self.queries = None if queries is None else query_budget(queries, positive_int("restarts", restarts))
        if self.queries is not None:
            steps = min(positive_int("steps", steps), steps_within(self.queries, estimator.samples, int(restarts)))
        super().__init__(threat, steps=steps, restarts=restarts, rel_step_size=rel_step_size,
                         random_start=random_start, loss=loss, momentum=momentum, early_stop=True, seed=seed)
        self.estimator = estimator

    def _gradient(self, ctx: AttackContext, x: Tensor, loss_fn, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.estimator(ctx, x, loss_fn, idx)


@register("spsa", threats=("linf", "l2", "l1"), kind="score-based", budget=("queries",),
          summary="PGD on SPSA gradient estimates from scores (Uesato et al. 2018, arXiv:1802.05666)")
class SPSA(EstimatedPGD):
    """SPSA attack (Uesato et al. 2018): PGD on SPSA gradient estimates.

    Args:
        threat: where the adversary may move (Linf as in the paper; any norm PGD takes).
        steps: PGD steps; samples: antithetic Rademacher pairs per step (default 64, fewer if ``queries``
            cannot hold one step of 64); delta: their size.
        loss: "margin" (as in the paper), "ce", "dlr" or a callable; maximised.
        queries: optional hard per-sample budget for the whole call; steps is lowered to fit it.
    """

    def __init__(self, threat: Threat, steps: int = 100, samples: int | None = None, delta: float = 0.01,
                 restarts: int = 1, rel_step_size: float | None = None, random_start: bool = False,
                 loss: str | LossFn = "margin", batch_size: int = 4096, seed: int = 0, queries: int | None = None):
        samples = default_samples(64, queries, restarts) if samples is None else samples
        super().__init__(threat, SPSAGradient(samples, delta, batch_size), steps=steps, restarts=restarts,
                         rel_step_size=rel_step_size, random_start=random_start, loss=loss, seed=seed, queries=queries)
