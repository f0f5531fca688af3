"""Confidence intervals for an accuracy measured on n points.

Robust accuracy is a binomial proportion: k of n test points survive. The
interval quoted in reports is the exact Clopper-Pearson interval (Clopper &
Pearson, "The use of confidence or fiducial limits illustrated in the case of
the binomial", Biometrika 1934): the set of p for which neither tail of
Binomial(n, p) at k is below alpha / 2. It never undercovers. The Wilson score
interval (Wilson 1927) is offered as the usual narrower approximation.

Both are computed in pure Python (the regularised incomplete beta function by
its continued fraction, then bisection), so no SciPy is needed at run time.
"""

from __future__ import annotations

import math

__all__ = ["clopper_pearson", "wilson", "binomial_cdf", "betainc"]


def _check(k: int, n: int, confidence: float) -> None:
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if not isinstance(k, int) or not 0 <= k <= n:
        raise ValueError(f"k must be an integer in [0, n={n}], got {k!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence!r}")


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz method)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b) for a, b > 0."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), via I_{1-p}(n - k, k + 1)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return betainc(n - k, k + 1, 1.0 - p)


def _bisect(f, lo: float, hi: float, iters: int = 80) -> float:
    """Root of a function increasing on [lo, hi] (f(lo) <= 0 <= f(hi))."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) > 0:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval for a binomial proportion with k successes of n.

    Returns (0, 1) when n == 0.
    """
    _check(k, n, confidence)
    if n == 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    # lower: P(X >= k; p) = I_p(k, n-k+1) = alpha/2 (rises with p)
    lower = 0.0 if k == 0 else _bisect(lambda p: betainc(k, n - k + 1, p) - alpha / 2, 0.0, 1.0)
    # upper: P(X <= k; p) = alpha/2, i.e. I_p(k+1, n-k) = 1 - alpha/2
    upper = 1.0 if k == n else _bisect(lambda p: betainc(k + 1, n - k, p) - (1 - alpha / 2), 0.0, 1.0)
    return lower, upper


def _normal_quantile(q: float) -> float:
    """Inverse of the standard normal CDF (bisection on math.erf)."""
    return _bisect(lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2))) - q, -40.0, 40.0)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (approximate; narrower than Clopper-Pearson)."""
    _check(k, n, confidence)
    if n == 0:
        return 0.0, 1.0
    z = _normal_quantile(1 - (1 - confidence) / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
