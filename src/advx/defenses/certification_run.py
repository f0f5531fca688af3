"""The numbers of a randomized-smoothing certification run (``advx certify``).

Certificates come from :func:`advx.defenses.smoothing.certify` (Cohen, Rosenfeld &
Kolter, ICML 2019, https://arxiv.org/abs/1902.02918); the run itself -- chunks of
points, checkpoints, resume, the run folder -- is the certify job,
:mod:`advx.jobs.certify`. This module holds what the run computes and needs no
folder: the seed of each chunk, the closed-form largest certifiable radius, and
the results document (per-point prediction and radius, the certified-accuracy curve).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from advx.defenses.smoothing import ABSTAIN, Certificate, certified_accuracy
from advx.model import ModelFn, attack_mode

__all__ = ["max_certifiable_radius", "chunk_seed", "certify_results"]


def max_certifiable_radius(sigma: float, n: int, alpha: float) -> float:
    """The largest radius ``n`` samples can certify: all n noisy predictions agree,
    p_A_lower = alpha^(1/n), radius sigma * Phi^-1(alpha^(1/n))."""
    from scipy import stats

    return float(sigma * stats.norm.ppf(alpha ** (1.0 / n)))


def chunk_seed(seed: int, chunk: int) -> int:
    """The noise seed of chunk ``chunk`` (points ``chunk * size ...``): any chunk, any time, the same draws."""
    return (int(seed) * 1_000_003 + 7919 * int(chunk)) % (2**63 - 1)


def certify_results(model: ModelFn, x: Tensor, y: Tensor, cert: Certificate, settings: dict[str, Any],
                    radii: Sequence[float]) -> dict[str, Any]:
    """The certify results: base and smoothed accuracy, abstentions, the table at ``radii``, the curve,
    the per-point certificates (``settings``: sigma, n, alpha ... as run)."""
    y = y.cpu()
    radii = [float(r) for r in radii]
    with attack_mode(model) as m, torch.no_grad():  # eval mode, restored afterwards
        base = torch.cat([m(x[i:i + 500]).argmax(1).cpu() for i in range(0, len(x), 500)])
    top = max_certifiable_radius(settings["sigma"], settings["n"], settings["alpha"])
    grid = torch.linspace(0, max(top, max(radii, default=0.0)) * 1.05, 101).tolist()
    return {
        "settings": settings,
        "base_accuracy": float((base == y).double().mean()),
        "smoothed_accuracy": certified_accuracy(cert, y, [0.0])[0],
        "abstain_rate": float((cert.prediction == ABSTAIN).double().mean()),
        "max_certifiable_radius": top,
        "table": {"radii": radii, "certified_accuracy": certified_accuracy(cert, y, radii)},
        "curve": {"radii": grid, "certified_accuracy": certified_accuracy(cert, y, grid)},
        "per_sample": {"label": y.tolist(), "prediction": cert.prediction.tolist(),
                       "radius": [round(float(r), 6) for r in cert.radius], "count": cert.count.tolist()},
    }
