"""Confidence intervals: exact Clopper-Pearson and Wilson against SciPy, and their properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from advx.evaluation.stats import betainc, binomial_cdf, clopper_pearson, wilson


@st.composite
def counts(draw, max_n=5000):
    n = draw(st.integers(1, max_n))
    return draw(st.integers(0, n)), n


@given(counts(), st.sampled_from([0.9, 0.95, 0.99]))
def test_clopper_pearson_matches_the_beta_quantiles(kn, confidence):
    k, n = kn
    alpha = 1 - confidence
    lo, hi = clopper_pearson(k, n, confidence)
    ref_lo = 0.0 if k == 0 else stats.beta.ppf(alpha / 2, k, n - k + 1)
    ref_hi = 1.0 if k == n else stats.beta.ppf(1 - alpha / 2, k + 1, n - k)
    assert lo == pytest.approx(ref_lo, abs=1e-9)
    assert hi == pytest.approx(ref_hi, abs=1e-9)
    assert 0 <= lo <= k / n <= hi <= 1


@given(counts())
def test_wilson_matches_scipy(kn):
    k, n = kn
    lo, hi = wilson(k, n)
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-9)


@given(counts(max_n=400), st.floats(0.001, 0.999))
def test_binomial_cdf_matches_scipy(kn, p):
    k, n = kn
    assert binomial_cdf(k, n, p) == pytest.approx(stats.binom.cdf(k, n, p), abs=1e-10)
    assert betainc(k + 1, n - k + 1, p) == pytest.approx(stats.beta.cdf(p, k + 1, n - k + 1), abs=1e-10)


def test_interval_shrinks_like_one_over_root_n():
    widths = [clopper_pearson(n // 2, n)[1] - clopper_pearson(n // 2, n)[0] for n in (100, 400, 1600)]
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[1] == pytest.approx(2.0, rel=0.05)
    assert widths[1] / widths[2] == pytest.approx(2.0, rel=0.05)


def test_known_values_and_edge_cases():
    # 0 of 10: the upper bound solves (1 - p)^10 = 0.025
    assert clopper_pearson(0, 10)[1] == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-12)
    assert clopper_pearson(10, 10)[0] == pytest.approx(0.025 ** (1 / 10), abs=1e-12)
    assert clopper_pearson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("k,n,c", [(-1, 10, 0.95), (11, 10, 0.95), (1, -1, 0.95), (1, 10, 1.0), (1, 10, 0)])
def test_bad_arguments_are_refused(k, n, c):
    with pytest.raises(ValueError):
        clopper_pearson(k, n, c)
