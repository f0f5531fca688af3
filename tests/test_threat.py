"""Threat models: projections are exact, starts and steps have the right geometry."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from advx.threat import L0, L1, L2, Decibels, Linf, Threat, parse_threat

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


# ------------------------------------------------------- spec strings, equality
_radii = st.one_of(st.integers(1, 254).map(lambda k: k / 255), st.floats(1e-4, 10.0, allow_nan=False),
                   st.integers(1, 20).map(float))
_bounds = st.one_of(st.just(None), st.tuples(st.floats(-5, 0.5), st.floats(0.1, 5)).filter(lambda b: b[0] < b[1]))


def _build(kind: str, eps: float, bounds, sparsity: float) -> Threat:
    kw = {} if bounds is None else {"bounds": bounds}
    if kind == "l0":
        return L0(max(1, round(eps)), **kw)
    if kind == "l1":
        return L1(eps, sparsity=sparsity, **kw)
    if kind == "db":
        return Decibels(-eps * 5, **kw)
    return {"linf": Linf, "l2": L2}[kind](eps, **kw)


@given(kind=st.sampled_from(["linf", "l2", "l1", "l0", "db"]), eps=_radii, bounds=_bounds,
       sparsity=st.sampled_from([0.01, 0.05, 1.0]))
def test_spec_string_round_trips(kind, eps, bounds, sparsity):
    t = _build(kind, eps, bounds, sparsity)
    spec = str(t)
    assert parse_threat(spec) == [t], spec
    assert hash(parse_threat(spec)[0]) == hash(t)
    assert ("bounds=" in spec) == (bounds is not None and tuple(bounds) != t.default_bounds)


def test_spec_strings_read_like_the_command_line():
    assert str(Linf(8 / 255)) == "linf:8/255" and str(Linf(0.1)) == "linf:0.1" and str(L2(0.5)) == "l2:0.5"
    assert str(L0(10)) == "l0:10" and str(Decibels(-30)) == "db:-30"
    assert str(L1(10, sparsity=0.05)) == "l1:10,sparsity=0.05"
    assert str(L2(1.0, bounds=(-1, 1))) == "l2:1,bounds=-1:1"
    per_channel = Linf(0.1, bounds=(torch.tensor([0.0, 0, 0]), torch.tensor([1.0, 2, 3])))
    assert parse_threat(str(per_channel)) == [per_channel]
    assert len({Linf(0.1), Linf(0.1), parse_threat("linf:0.1")[0]}) == 1
    assert Linf(0.1) != L2(0.1) and Linf(0.1) != Linf(0.1, bounds=(-1, 1)) and Linf(0.1) != Decibels(-20)


def test_parse_threat_takes_fractions_and_refuses_fractional_l0():
    (t,) = parse_threat("linf:8/255")
    assert t.eps == 8 / 255
    assert [u.eps for u in parse_threat("l2:0.5,1/2")] == [0.5, 0.5]
    assert parse_threat("l0:2")[0].k == 2 and parse_threat("l0:2.0")[0].k == 2
    with pytest.raises(ValueError, match="whole number"):
        parse_threat("l0:2.5")
    for bad in ("linf:1/0", "linf:a/255", "linf:nan", "l2:0.1,sparsity=0.5", "linf:0.1,bounds=0"):
        with pytest.raises(ValueError, match="threat|radius|bound"):
            parse_threat(bad)
    assert parse_threat("linf:0.1,bounds=-1:1", bounds=(0, 1))[0] == Linf(0.1, bounds=(-1, 1))  # the spec wins


# ------------------------------------------------------------- dual geometry
@given(seed=seeds, kind=st.sampled_from(["linf", "l2", "l1"]))
def test_dual_norm_is_the_sup_over_the_unit_ball(seed, kind):
    """Hölder: <g, d> <= ||g||_* for every d in the unit ball, with equality at the steepest-ascent step."""
    g = torch.Generator().manual_seed(seed)
    grad = torch.randn(5, 3, 4, generator=g, dtype=torch.float64)
    wide = (-100.0, 100.0)  # the box plays no part in the dual norm
    t = {"linf": Linf(1.0, bounds=wide), "l2": L2(1.0, bounds=wide), "l1": L1(1.0, bounds=wide, sparsity=1 / 12)}[kind]
    dual = t.dual_norm(grad)
    step = t.step(grad)
    assert torch.allclose(t.norm(step), torch.ones(5, dtype=torch.float64))
    assert torch.allclose((grad * step).flatten(1).sum(1), dual)  # attained by the steepest-ascent step
    d = t._sample_ball(torch.zeros_like(grad), g)  # uniform in the unit ball
    assert bool(((grad * d).flatten(1).sum(1) <= dual + 1e-9).all())
    ref = {"linf": grad.abs().flatten(1).sum(1), "l2": grad.flatten(1).norm(dim=1),
           "l1": grad.abs().flatten(1).amax(1)}[kind]
    assert torch.allclose(dual, ref)


@given(seed=seeds, kind=st.sampled_from(["linf", "l2", "l1", "l0"]))
def test_hyperplane_step_reaches_the_plane_at_the_dual_distance(seed, kind):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(4, 10, generator=g, dtype=torch.float64)
    c = torch.rand(4, generator=g, dtype=torch.float64) + 0.1
    t = {"linf": Linf(1.0), "l2": L2(1.0), "l1": L1(1.0), "l0": L0(3)}[kind]
    d = t.hyperplane_step(w, c)
    assert torch.allclose((w * d).sum(1), c)
    if kind != "l0":
        assert torch.allclose(t.norm(d), c / t.dual_norm(w))  # the distance to the plane in the norm


def test_linear_gain_uses_the_radius_around_x_for_decibels():
    x = torch.tensor([[0.5, -0.25, 0.1], [0.05, 0.0, -0.02]])
    grad = torch.tensor([[1.0, -2.0, 0.5], [1.0, 1.0, 1.0]])
    t = Decibels(-20)
    assert torch.allclose(t.linear_gain(grad, x), grad.abs().sum(1) * torch.tensor([0.5, 0.05]) * 0.1)


@given(seed=seeds, kind=st.sampled_from(["linf", "l2", "l1", "l0", "db"]))
def test_unbounded_reaches_every_point_of_the_box(seed, kind):
    g = torch.Generator().manual_seed(seed)
    lo, hi = (-1.0, 1.0) if kind == "db" else (-0.5, 2.0)
    t = {"linf": Linf(0.01, bounds=(lo, hi)), "l2": L2(0.01, bounds=(lo, hi)), "l1": L1(0.01, bounds=(lo, hi)),
         "l0": L0(1, bounds=(lo, hi)), "db": Decibels(-40)}[kind]
    x = lo + (hi - lo) * torch.rand(6, 2, 5, generator=g, dtype=torch.float64)
    z = lo + (hi - lo) * torch.rand(6, 2, 5, generator=g, dtype=torch.float64)
    u = t.unbounded(x)
    assert type(u) is type(t) and u.bounds == t.bounds
    assert torch.allclose(u.project(z, x), z, atol=1e-12)
    assert bool((u.distance(z, x) <= u.eps * (1 + 1e-9)).all())


# --------------------------------------------------------------- eps scale
def test_check_scale_names_the_likely_mistake():
    x = torch.rand(4, 1, 28, 28)
    with pytest.raises(ValueError, match=r"linf:8 on data in \[0, 1\].*did you mean linf:8/255\?"):
        parse_threat("linf:8")[0].check_scale(x)
    parse_threat("linf:8/255")[0].check_scale(x)
    parse_threat("linf:8")[0].check_scale(x, allow_large_eps=True)
    Linf(8, bounds=(0, 255)).check_scale(x * 255)
    with pytest.raises(ValueError, match="half the data range"):
        Linf(0.5).check_scale()
    L2(27.9).check_scale(x)  # the diameter of [0, 1]^784 is 28
    with pytest.raises(ValueError, match="diameter 28"):
        L2(28.5).check_scale(x)
    with pytest.raises(ValueError, match="L1 diameter"):
        L1(800).check_scale(x)
    with pytest.raises(ValueError, match="components"):
        L0(785).check_scale(x)
    clips = torch.rand(3, 100) - 0.5
    Decibels(-20).check_scale(clips)
    with pytest.raises(ValueError, match="did you mean db:-10"):
        Decibels(10).check_scale(clips)


@pytest.mark.parametrize("threat", [Linf(0.1), L2(0.5), L1(2.0), Decibels(-20.0)], ids=str)
def test_a_separable_projection_moves_each_component_on_its_own(threat):
    # what Square's Linf step relies on: changing one component of x_adv changes only that component of the
    # projection (Linf, Decibels), which an L2 / L1 projection does not promise
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 4, 4, generator=g) * 1.6 - 0.8
    x_adv = x + torch.randn(x.shape, generator=g)
    bumped = x_adv.clone()
    bumped[:, 0, 1, 2] += 0.5
    moved = (threat.project(bumped, x) != threat.project(x_adv, x)).flatten(1)
    moved[:, 1 * 4 + 2] = False
    assert bool(moved.any()) != threat.separable
