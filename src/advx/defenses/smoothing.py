"""Randomized smoothing: certified L2 robustness.

Cohen, Rosenfeld & Kolter, "Certified Adversarial Robustness via Randomized
Smoothing", ICML 2019 (https://arxiv.org/abs/1902.02918). The smoothed
classifier g(x) = argmax_c P(f(x + e) = c), e ~ N(0, sigma^2 I), is robust
around x within the L2 radius sigma * Phi^-1(p_A) if the top class has
probability p_A >= 1/2 (Theorem 1). It is estimated by Monte Carlo:

* ``certify`` (their CERTIFY): guess the top class c_A from ``n0`` noisy
  samples, count it in ``n`` fresh samples, take the one-sided (1 - alpha)
  Clopper-Pearson lower bound p_A_lower; abstain if p_A_lower < 1/2, else
  return c_A with radius sigma * Phi^-1(p_A_lower). With probability >= 1 -
  alpha the radius is a true certificate of g.
* ``predict`` (their PREDICT): the top two counts n_A, n_B of ``n`` samples;
  abstain unless the two-sided binomial test of n_A against n_A + n_B at 1/2 has
  p-value <= alpha.

Noise is not clipped to the input bounds (as in the paper). The base model
should be trained with Gaussian noise of the same sigma (``advx train --defense
noise --sigma 0.25``). Needs SciPy (``scipy.stats``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from advx.model import ModelFn, attack_mode

__all__ = ["ABSTAIN", "Certificate", "sample_counts", "certify", "predict", "certified_accuracy"]

#: the label returned when the smoothed classifier abstains
ABSTAIN = -1


def _scipy_stats():
    try:
        from scipy import stats
    except ImportError as e:  # pragma: no cover - scipy is a dependency of the defenses
        raise ImportError("randomized smoothing needs SciPy: pip install scipy") from e
    return stats


@dataclass
class Certificate:
    """Per input: the smoothed prediction (ABSTAIN = -1), the certified L2 radius (0 when abstaining),
    the lower confidence bound on p_A, and the count of the top class among ``n`` samples."""

    prediction: Tensor  # (N,) int64
    radius: Tensor  # (N,) float64
    p_lower: Tensor  # (N,) float64
    count: Tensor  # (N,) int64


def _check(x: Tensor, sigma: float, n: int, alpha: float, batch_size: int) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise ValueError("x must be a float tensor batch of shape (N, ...)")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1 (noise samples per input), got {n!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1) (e.g. 0.001), got {alpha!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")


def sample_counts(model: ModelFn, x: Tensor, sigma: float, n: int, batch_size: int = 1000,
                  generator: torch.Generator | None = None) -> Tensor:
    """(N, classes) int64: how often the base ``model`` predicts each class on ``n`` draws of x + N(0, sigma^2 I)."""
    _check(x, sigma, n, 0.5, batch_size)
    device = generator.device if generator is not None else x.device
    rows = []
    with attack_mode(model) as m, torch.no_grad():
        for xi in x:
            counts: Tensor | None = None
            for start in range(0, n, batch_size):
                b = min(batch_size, n - start)
                noise = torch.randn((b, *xi.shape), generator=generator, device=device, dtype=x.dtype)
                pred = m(xi.unsqueeze(0) + sigma * noise.to(x.device))
                if counts is None:
                    counts = torch.zeros(pred.shape[1], dtype=torch.long, device=x.device)
                counts += torch.bincount(pred.argmax(1), minlength=pred.shape[1])
            rows.append(counts)
    return torch.stack(rows).cpu()


def certify(model: ModelFn, x: Tensor, sigma: float, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
            batch_size: int = 1000, generator: torch.Generator | None = None) -> Certificate:
    """CERTIFY of Cohen et al. (2019) for each input of ``x``; see the module docstring."""
    _check(x, sigma, n, alpha, batch_size)
    _check(x, sigma, n0, alpha, batch_size)
    stats = _scipy_stats()
    guess = sample_counts(model, x, sigma, n0, batch_size, generator).argmax(1)
    counts = sample_counts(model, x, sigma, n, batch_size, generator)
    count = counts.gather(1, guess[:, None]).squeeze(1)
    k = count.double().numpy()
    p_lower = torch.from_numpy(stats.beta.ppf(alpha, k, n - k + 1)).nan_to_num(0.0)  # k = 0 -> 0
    certified = p_lower > 0.5
    radius = torch.where(certified, sigma * torch.from_numpy(stats.norm.ppf(p_lower.clamp(0.5, 1).numpy())),
                         torch.zeros_like(p_lower))
    prediction = torch.where(certified, guess, torch.full_like(guess, ABSTAIN))
    return Certificate(prediction, radius, p_lower, count)


def predict(model: ModelFn, x: Tensor, sigma: float, n: int = 1000, alpha: float = 0.001, batch_size: int = 1000,
            generator: torch.Generator | None = None) -> Tensor:
    """PREDICT of Cohen et al. (2019): the smoothed class per input, or ABSTAIN; wrong with probability <= alpha."""
    _check(x, sigma, n, alpha, batch_size)
    stats = _scipy_stats()
    counts = sample_counts(model, x, sigma, n, batch_size, generator)
    top2 = counts.topk(2, dim=1)
    out = top2.indices[:, 0].clone()
    for i, (n_a, n_b) in enumerate(top2.values.tolist()):
        if stats.binomtest(n_a, n_a + n_b, 0.5).pvalue > alpha:
            out[i] = ABSTAIN
    return out


def certified_accuracy(certificate: Certificate, y: Tensor, radii: Sequence[float]) -> list[float]:
    """Fraction of inputs classified correctly with a certified radius >= r, for each r in ``radii``."""
    y = y.cpu()
    if y.shape != certificate.prediction.shape:
        raise ValueError(f"y must have shape {tuple(certificate.prediction.shape)}, got {tuple(y.shape)}")
    correct = certificate.prediction == y
    return [float((correct & (certificate.radius >= r)).double().mean()) for r in radii]
