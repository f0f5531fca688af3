"""NES: PGD driven by natural-evolution-strategies gradient estimates.

Ilyas, Engstrom, Athalye & Lin, "Black-box Adversarial Attacks with Limited
Queries and Information", ICML 2018 (https://arxiv.org/abs/1804.08598).

The gradient of the loss at x is estimated with Gaussian search directions and
antithetic sampling (Sec. 2.2): for ``samples`` pairs u ~ N(0, I),
``g = 1 / (2 sigma samples) * sum_u (L(x + sigma u) - L(x - sigma u)) u``,
then PGD steps on it (the paper's projected sign step for Linf). Uses only
counted forwards, through :class:`advx.attacks.spsa.EstimatedPGD`.

Queries per sample and restart: ``steps * (2 * samples + 1) + 1``, plus the
contract's 2; ``result.gradients == 0``. ``queries=`` makes it a hard budget
for the whole call (``steps`` lowered to fit).
"""

from __future__ import annotations

import torch
from torch import Tensor

from advx.attacks.losses import LossFn
from advx.attacks.registry import register
from advx.attacks.spsa import EstimatedPGD, GradientEstimator, default_samples
from advx.threat import Threat

__all__ = ["NESGradient", "NES"]


class NESGradient(GradientEstimator):
    """NES: antithetic Gaussian directions of scale ``sigma``."""

    def __init__(self, samples: int = 50, sigma: float = 1e-3, batch_size: int = 4096):
        super().__init__(samples, sigma, batch_size)

    def directions(self, k: int, x: Tensor, generator: torch.Generator) -> Tensor:
        return torch.randn((k, *x.shape), generator=generator, device=generator.device).to(x)


@register("nes", threats=("linf", "l2", "l1"), kind="score-based", budget=("queries",),
          summary="PGD on natural-evolution-strategies gradient estimates (Ilyas et al. 2018, arXiv:1804.08598)")
class NES(EstimatedPGD):
    """NES attack (Ilyas et al. 2018): PGD on NES gradient estimates, score-based.

    Args:
        threat: where the adversary may move (Linf in the paper; any norm PGD takes).
        steps: PGD steps; samples: antithetic Gaussian pairs per step (default 50, fewer if ``queries``
            cannot hold one step of 50); sigma: their scale.
        loss: "margin", "ce" (the paper's cross-entropy), "dlr" or a callable; maximised.
        queries: optional hard per-sample budget for the whole call; steps is lowered to fit it.
    """

    def __init__(self, threat: Threat, steps: int = 100, samples: int | None = None, sigma: float = 1e-3,
                 restarts: int = 1, rel_step_size: float | None = None, random_start: bool = False,
                 loss: str | LossFn = "ce", batch_size: int = 4096, seed: int = 0, queries: int | None = None):
        samples = default_samples(50, queries, restarts) if samples is None else samples
        super().__init__(threat, NESGradient(samples, sigma, batch_size), steps=steps, restarts=restarts,
                         rel_step_size=rel_step_size, random_start=random_start, loss=loss, seed=seed, queries=queries)
