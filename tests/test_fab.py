"""FAB and FAB-T (Croce & Hein 2020): exact box-constrained hyperplane projections,
minimal distances on a linear model, invariants."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import linprog, minimize
from tests.geometry import exact_distance
from tests.helpers import EPS, TinyMLP, per_sample, tiny_data

from advx.attacks.fab import FAB, FABT, project_hyperplane
from advx.threat import L0, L1, L2, Linf


# ------------------------------------------------- hyperplane projections
def _reference(p, w, r, norm):
    """min ||d|| s.t. w.d = r, 0 <= p + d <= 1, by SciPy (LP for Linf/L1, SLSQP for L2)."""
    d = len(p)
    bounds = list(zip(-p, 1 - p))
    if norm == "l2":
        res = minimize(lambda v: v @ v, np.zeros(d), jac=lambda v: 2 * v, bounds=bounds, method="SLSQP",
                       constraints=[{"type": "eq", "fun": lambda v: w @ v - r, "jac": lambda v: w}],
                       options={"ftol": 1e-15, "maxiter": 500})
        return float(np.sqrt(res.x @ res.x))
    eye = np.eye(d)
    if norm == "linf":  # variables (v, t)
        c, a_ub = np.r_[np.zeros(d), 1], np.r_[np.c_[eye, -np.ones(d)], np.c_[-eye, -np.ones(d)]]
        a_eq, extra = np.r_[w, 0][None], [(0, None)]
    else:  # variables (v, u), |v| <= u
        c, a_ub = np.r_[np.zeros(d), np.ones(d)], np.r_[np.c_[eye, -eye], np.c_[-eye, -eye]]
        a_eq, extra = np.r_[w, np.zeros(d)][None], [(0, None)] * d
    res = linprog(c, A_ub=a_ub, b_ub=np.zeros(2 * d), A_eq=a_eq, b_eq=[r], bounds=bounds + extra)
    return float(res.fun)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@given(seed=st.integers(0, 10_000), dim=st.integers(1, 8), scale=st.floats(0.05, 3.0))
def test_hyperplane_projection_is_the_exact_minimum(norm, seed, dim, scale):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(1, dim, generator=g, dtype=torch.float64)
    w = torch.randn(1, dim, generator=g, dtype=torch.float64)
    w[torch.rand(1, dim, generator=g) < 0.2] = 0.0  # some coordinates irrelevant
    r = torch.randn(1, generator=g, dtype=torch.float64) * scale
    lo, hi = torch.zeros_like(p), torch.ones_like(p)
    d = project_hyperplane(p, w, r, lo, hi, norm)
    assert bool(((p + d) >= -1e-12).all() and ((p + d) <= 1 + 1e-12).all())
    assert bool((d[w == 0] == 0).all())
    reach = torch.where(r * w > 0, hi - p, lo - p)  # the box corner that makes the most progress
    best = float((w * torch.where(w != 0, reach, torch.zeros_like(p))).sum())
    if abs(best) < abs(float(r)):  # unreachable: go to that corner
        torch.testing.assert_close(p + d, torch.where(w != 0, p + reach, p))
        return
    assert float((w * d).sum()) == pytest.approx(float(r), abs=1e-9)
    q = {"linf": float("inf"), "l2": 2.0, "l1": 1.0}[norm]
    assert float(d.norm(p=q)) == pytest.approx(_reference(p[0].numpy(), w[0].numpy(), float(r), norm), abs=1e-6)


def test_projection_is_batched_row_by_row():
    g = torch.Generator().manual_seed(1)
    p, w = torch.rand(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    r = torch.randn(5, generator=g, dtype=torch.float64) * 0.3
    lo, hi = torch.zeros_like(p), torch.ones_like(p)
    for norm in ("linf", "l2", "l1"):
        whole = project_hyperplane(p, w, r, lo, hi, norm)
        rows = torch.cat([project_hyperplane(p[i:i + 1], w[i:i + 1], r[i:i + 1], lo[:1], hi[:1], norm)
                          for i in range(5)])
        torch.testing.assert_close(whole, rows)


# ------------------------------------------------------------ known answers
@pytest.mark.parametrize("kind", [Linf, L2, L1])
def test_fab_finds_the_exact_minimal_distance_of_a_linear_model(linear4, kind):
    """The boundaries are hyperplanes, so FAB's projection lands on the nearest one (plus the
    eta = 1.05 overshoot, which the backward steps shrink to well under 1%)."""
    model, x, y = linear4
    exact = exact_distance(model, x, kind)
    res = FAB(kind(100.0, bounds=(-10.0, 10.0)), steps=20)(model, x, y)
    assert bool(res.success.all())
    ratio = res.distance / exact
    assert bool((ratio >= 1 - 1e-5).all() and (ratio <= 1.01).all()), (ratio.min(), ratio.max())


@pytest.mark.parametrize("attack", [FAB, FABT])
@pytest.mark.parametrize("kind", [Linf, L2, L1])
def test_success_just_above_and_never_below_the_exact_distance(linear4, kind, attack):
    model, x, y = linear4
    for factor, expect in ((1.05, True), (0.95, False)):
        threat = per_sample(kind, lambda z, f=factor: f * exact_distance(model, z, kind))
        res = attack(threat, steps=20)(model, x, y)
        assert bool((res.success == expect).all()), f"x{factor}: {int(res.success.sum())}/{len(x)}"


@pytest.mark.parametrize("kind", [Linf, L2])
def test_targeted_fab_reaches_the_least_likely_class(linear4, kind):
    model, x, y = linear4
    target = model(x).argmin(1)
    res = FABT(kind(100.0, bounds=(-10.0, 10.0)), steps=40)(model, x, y, target=target)
    assert bool(res.success.all()) and torch.equal(res.logits.argmax(1), target)
    assert bool((res.distance >= exact_distance(model, x, kind, target) * (1 - 1e-5)).all())


# --------------------------------------------------------------- invariants
CASES = [(cls, kind) for cls in (FAB, FABT) for kind in (Linf, L2, L1)]


@pytest.mark.parametrize("cls,kind", CASES, ids=[f"{c.__name__}-{k.__name__}" for c, k in CASES])
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 3.0))
def test_inside_ball_and_bounds_deterministic_and_model_untouched(cls, kind, seed, scale):
    model = TinyMLP().train()
    params = [p.detach().clone() for p in model.parameters()]
    x, y = tiny_data(seed)
    threat = kind(EPS[kind] * scale)
    attack = cls(threat, steps=5, restarts=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = attack(model, x, y, generator=torch.Generator().manual_seed(seed))
        again = attack(model, x, y, generator=torch.Generator().manual_seed(seed))
    assert res.x_adv.shape == x.shape and res.x_adv.dtype == x.dtype
    assert bool((res.x_adv >= 0).all() and (res.x_adv <= 1).all())
    assert bool((threat.distance(res.x_adv, x) <= threat.eps * (1 + 1e-5) + 1e-6).all())
    assert torch.equal(res.x_adv, again.x_adv) and torch.equal(res.queries, again.queries)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params))
    with torch.no_grad():
        assert torch.equal(res.success, model.eval()(res.x_adv).argmax(1) != y)


@pytest.mark.parametrize("cls", [FAB, FABT])
def test_eps_zero_returns_x_and_fooled_samples_cost_nothing(cls):
    model = TinyMLP().eval()
    x, _ = tiny_data(2, n=8)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 5
    assert torch.equal(cls(Linf(0.0), steps=3)(model, x, y).x_adv, x)
    res = cls(L2(1.0), steps=3)(model, x, y)
    assert bool((res.gradients[:3] == 0).all()) and bool((res.gradients[3:] > 0).all())
    assert cls.minimum_norm


def test_more_restarts_never_lose_a_sample(small_cnn):
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        y = small_cnn(x).argmax(1)
    one = FABT(Linf(0.01), steps=8, n_target_classes=2)(small_cnn, x, y)
    two = FABT(Linf(0.01), steps=8, n_target_classes=2, restarts=2)(small_cnn, x, y)
    assert bool((two.success | ~one.success).all())
    assert bool((two.gradients >= one.gradients).all())


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="threat"):
        FAB(L0(3))
    for kwargs, word in (({"steps": 0}, "steps"), ({"restarts": 0}, "restarts"), ({"alpha_max": 2}, "alpha_max"),
                         ({"eta": 0.5}, "eta"), ({"beta": 0}, "beta")):
        with pytest.raises(ValueError, match=word):
            FAB(Linf(0.1), **kwargs)
    with pytest.raises(ValueError, match="n_target_classes"):
        FABT(Linf(0.1), n_target_classes=0)


def test_relative_threat_units_are_kept_apart():
    """Decibels measures distance relative to each clip's peak but its radius is absolute:
    samples fooled within the radius by the first target must not be attacked again."""
    from torch import nn

    from advx.threat import Decibels

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 4, 9, stride=4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 98, 5)).eval()
    x = (torch.rand(6, 1, 400, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    x = x * torch.linspace(0.1, 0.9, 6)[:, None, None]  # peaks from 0.1 to 0.9
    with torch.no_grad():
        y = model(x).argmax(1)
    threat = Decibels(0.0)  # radius = the clip's peak
    res = FABT(threat, steps=10, n_target_classes=3)(model, x, y)
    assert bool(res.success.all()) and bool((res.distance <= 1.0 + 1e-6).all())
    assert bool((res.gradients == 10).all())  # one target sufficed for every clip
