"""Threat models: projections are exact, starts and steps have the right geometry."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from advx.threat import L0, L1, L2, Linf, parse_threat

seeds = st.integers(0, 2**31 - 1)


def _problem(seed: int, n: int = 6, d: int = 12, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    v = x + scale * torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, v


def _ref_l2(v, x, eps, lo=0.0, hi=1.0):
    """Reference: bisection on t in clip(x + t (v - x)), the KKT path of the projection."""
    out = []
    for vi, xi in zip(v, x):
        def z(t, xi=xi, vi=vi):
            return (xi + t * (vi - xi)).clamp(lo, hi)
        if (z(1.0) - xi).norm() <= eps:
            out.append(z(1.0))
            continue
        a, b = 0.0, 1.0
        for _ in range(200):
            m = (a + b) / 2
            a, b = (m, b) if (z(m) - xi).norm() <= eps else (a, m)
        out.append(z(a))
    return torch.stack(out)


def _ref_l1(v, x, eps, lo=0.0, hi=1.0):
    """Reference: bisection on the soft-threshold level lam, then box clipping."""
    out = []
    for vi, xi in zip(v, x):
        d = vi - xi
        def z(lam, xi=xi, d=d):
            return (xi + d.sign() * (d.abs() - lam).clamp_min(0)).clamp(lo, hi)
        if (z(0.0) - xi).abs().sum() <= eps:
            out.append(z(0.0))
            continue
        a, b = 0.0, float(d.abs().max())
        for _ in range(200):
            m = (a + b) / 2
            a, b = (a, m) if (z(m) - xi).abs().sum() <= eps else (m, b)
        out.append(z(b))
    return torch.stack(out)


@given(seed=seeds, eps=st.floats(0.0, 3.0), scale=st.sampled_from([0.1, 1.0, 5.0]))
def test_l2_projection_matches_reference(seed, eps, scale):
    x, v = _problem(seed, scale=scale)
    z = L2(eps).project(v, x)
    torch.testing.assert_close(z, _ref_l2(v, x, eps), atol=1e-7, rtol=0)


@given(seed=seeds, eps=st.floats(0.0, 6.0), scale=st.sampled_from([0.1, 1.0, 5.0]))
def test_l1_projection_matches_reference(seed, eps, scale):
    x, v = _problem(seed, scale=scale)
    z = L1(eps).project(v, x)
    torch.testing.assert_close(z, _ref_l1(v, x, eps), atol=1e-7, rtol=0)


@pytest.mark.parametrize("threat", [Linf(0.3), L2(0.7), L1(2.0), L0(3)], ids=repr)
@given(seed=seeds)
def test_projection_feasible_idempotent_and_fixes_feasible_points(threat, seed):
    x, v = _problem(seed, n=5, d=10)
    x, v = x.float(), v.float()
    z = threat.project(v, x)
    assert bool((z >= 0).all() and (z <= 1).all())
    assert bool((threat.distance(z, x) <= threat.eps * (1 + 1e-5) + 1e-6).all())
    torch.testing.assert_close(threat.project(z, x), z, atol=1e-6, rtol=0)
    # a feasible point is its own projection
    inside = threat.random_start(x, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(threat.project(inside, x), inside, atol=1e-6, rtol=0)


@pytest.mark.parametrize("threat", [Linf(0.3), L2(0.7), L1(2.0)], ids=repr)
@given(seed=seeds)
def test_projection_is_closest_feasible_point(threat, seed):
    """No feasible point sampled from the set is closer to v than its projection."""
    x, v = _problem(seed, n=4, d=8)
    z = threat.project(v, x)
    gen = torch.Generator().manual_seed(seed + 1)
    for _ in range(20):
        w = threat.random_start(x, gen)
        assert bool(((v - z).norm(dim=1) <= (v - w).norm(dim=1) + 1e-9).all())


@given(seed=seeds, k=st.integers(0, 12))
def test_l0_projection_keeps_the_k_largest_changes(seed, k):
    x, v = _problem(seed)
    z = L0(k).project(v, x)
    boxed = v.clamp(0, 1)
    changed = (z != x).sum(1)
    assert bool((changed <= k).all())
    # the squared distance removed is the smallest possible: drop all but the k largest
    kept = (boxed - x).pow(2).sort(1, descending=True).values[:, :k].sum(1)
    torch.testing.assert_close((z - x).pow(2).sum(1), kept)


def test_per_channel_bounds_are_respected():
    lo, hi = torch.tensor([0.0, -1.0, 0.5]), torch.tensor([1.0, 1.0, 2.0])
    threat = Linf(0.5, bounds=(lo, hi))
    x = (lo + hi).div(2).reshape(1, 3, 1, 1).expand(4, 3, 5, 5).clone()
    z = threat.project(x + 10 * torch.randn(4, 3, 5, 5), x)
    assert bool((z >= lo.reshape(1, 3, 1, 1)).all() and (z <= hi.reshape(1, 3, 1, 1)).all())


@pytest.mark.parametrize("threat", [Linf(0.2), L2(1.0), L1(3.0)], ids=repr)
def test_step_has_unit_norm_in_its_own_norm(threat):
    g = torch.randn(7, 3, 4, 4)
    s = threat.step(g)
    torch.testing.assert_close(threat.norm(s), torch.ones(7))
    # and is an ascent direction
    assert bool(((g * s).flatten(1).sum(1) > 0).all())


def test_l2_random_start_is_uniform_in_radius():
    """In d dimensions, P(||delta|| <= r * eps) = r^d for a uniform ball sample."""
    x = torch.full((4000, 3), 0.5)
    delta = L2(0.4)._sample_ball(x, torch.Generator().manual_seed(0))
    frac = (delta.norm(dim=1) <= 0.4 * 0.5**(1 / 3)).float().mean().item()
    assert abs(frac - 0.5) < 0.03


@pytest.mark.parametrize("bad", [-0.1, math.inf, math.nan])
def test_bad_eps_is_rejected_by_name(bad):
    with pytest.raises(ValueError, match="eps"):
        Linf(bad)


def test_bad_bounds_and_l0_k():
    with pytest.raises(ValueError, match="bounds"):
        L2(1.0, bounds=(1.0, 0.0))
    with pytest.raises(ValueError, match="whole number"):
        L0(2.5)


def test_parse_threat():
    threats = parse_threat("linf:0.1,0.2")
    assert [type(t) for t in threats] == [Linf, Linf] and [t.eps for t in threats] == [0.1, 0.2]
    assert parse_threat("l0:5")[0].k == 5
    with pytest.raises(ValueError, match="unknown norm"):
        parse_threat("l3:1")
    with pytest.raises(ValueError, match="colon"):
        parse_threat("linf")
