"""Score-based attacks built on estimated gradients (SPSA, NES) and SimBA."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.helpers import TinyConv
from torch import nn

from advx.attacks import PGD
from advx.attacks.base import AttackContext
from advx.attacks.losses import margin
from advx.attacks.nes import NES, NESGradient
from advx.attacks.simba import SimBA, dct_matrix
from advx.attacks.spsa import SPSA, EstimatedPGD, SPSAGradient
from advx.model import QueryCounter, ScoresOnly
from advx.threat import L1, L2, Linf


def _data(n: int = 16, seed: int = 0):
    model = TinyConv(classes=10)
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


@pytest.mark.parametrize("estimator,min_cos", [(SPSAGradient(200, 1e-3), 0.8), (NESGradient(200, 1e-3), 0.8)])
def test_estimates_align_with_the_true_gradient_of_a_linear_loss(estimator, min_cos):
    """On a linear model the loss is linear near x: both estimators are unbiased for its gradient."""
    lin = nn.Linear(20, 3).eval()
    x = torch.rand(6, 20, generator=torch.Generator().manual_seed(0))
    y = lin(x).argmax(1).detach()
    ctx = AttackContext(lin, x, y, None, torch.Generator().manual_seed(1), QueryCounter(6), 3,
                        torch.zeros(6, dtype=torch.bool))
    _, true, _ = ctx.gradient(x, lambda z: margin(z, y))
    _, est, logits = estimator(ctx, x, lambda z: margin(z, y))
    cos = nn.functional.cosine_similarity(est, true)
    assert bool((cos > min_cos).all()), cos
    assert torch.equal(ctx.counter.forwards, torch.full((6,), 1 + 1 + 2 * 200))  # +1 for ctx.gradient above
    torch.testing.assert_close(logits, lin(x).detach())


@pytest.mark.parametrize("make", [lambda t: SPSA(t, steps=6, samples=8), lambda t: NES(t, steps=6, samples=8)],
                         ids=["spsa", "nes"])
@settings(max_examples=6)
@given(seed=st.integers(0, 1000), kind=st.sampled_from([Linf, L2]))
def test_estimated_pgd_spends_exactly_its_queries_and_no_gradient(make, seed, kind):
    model, x, _ = _data(4, seed)
    y = torch.randint(0, 10, (4,), generator=torch.Generator().manual_seed(seed))
    threat = kind(0.05 if kind is Linf else 0.3)
    box = ScoresOnly(model)  # any backward through it raises
    res = make(threat)(box, x, y)
    assert int(res.gradients.sum()) == 0 and box.queries == int(res.queries.sum())
    assert bool((res.queries <= 6 * (2 * 8 + 1) + 1 + 2).all())
    assert bool((res.queries[~res.success] == 6 * (2 * 8 + 1) + 1 + 2).all())
    assert bool((threat.distance(res.x_adv, x) <= threat.eps * (1 + 1e-5)).all())
    assert bool((res.x_adv >= 0).all() and (res.x_adv <= 1).all())


def test_spsa_is_about_as_strong_as_white_box_pgd():
    """Measured on this model at Linf 0.1: SPSA 13/16, PGD-20 12/16."""
    model, x, y = _data()
    spsa = SPSA(Linf(0.1), steps=20, samples=32)(model, x, y)
    pgd = PGD(Linf(0.1), steps=20)(model, x, y)
    assert spsa.success.sum() >= pgd.success.sum() - 1
    nes = NES(Linf(0.1), steps=20, samples=32, loss="margin")(model, x, y)
    assert nes.success.sum() >= pgd.success.sum() - 2


def test_estimated_pgd_takes_any_estimator_and_is_deterministic():
    model, x, y = _data(6)
    a = EstimatedPGD(Linf(0.05), NESGradient(4, 1e-2), steps=5)(model, x, y, generator=torch.Generator().manual_seed(3))
    b = EstimatedPGD(Linf(0.05), NESGradient(4, 1e-2), steps=5)(model, x, y, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.x_adv, b.x_adv)
    with pytest.raises(TypeError, match="estimator"):
        EstimatedPGD(Linf(0.05), estimator=lambda *a: None)
    with pytest.raises(ValueError, match="samples"):
        SPSAGradient(samples=0)


def test_dct_matrix_is_orthonormal():
    d = dct_matrix(7, torch.float64)
    torch.testing.assert_close(d @ d.T, torch.eye(7, dtype=torch.float64))
    assert torch.allclose(d[0], torch.full((7,), 7 ** -0.5, dtype=torch.float64))


@pytest.mark.parametrize("kind,basis", [(Linf, "pixel"), (L2, "pixel"), (L2, "dct")])
@settings(max_examples=5)
@given(seed=st.integers(0, 1000))
def test_simba_stays_in_the_threat_and_budget(kind, basis, seed):
    model, x, _ = _data(4, seed)
    y = torch.randint(0, 10, (4,), generator=torch.Generator().manual_seed(seed))
    threat = kind(0.1 if kind is Linf else 0.5)
    box = ScoresOnly(model)
    res = SimBA(threat, queries=40, basis=basis)(box, x, y)
    assert bool((threat.distance(res.x_adv, x) <= threat.eps * (1 + 1e-5)).all())
    assert bool((res.queries <= 42).all()) and box.queries == int(res.queries.sum()) and res.gradients.sum() == 0


def test_simba_pixel_moves_each_coordinate_at_most_once_by_eps():
    model, x, y = _data(8)
    res = SimBA(Linf(0.1), queries=300, basis="pixel")(model, x, y)
    moved = (res.x_adv - x).abs()
    on_grid = (moved < 1e-6) | ((moved - 0.1).abs() < 1e-6) | (res.x_adv <= 1e-6) | (res.x_adv >= 1 - 1e-6)
    assert bool(on_grid.all())
    assert res.success.float().mean() >= 0.6  # measured: 7 of these 8


def test_simba_lowers_the_true_class_probability_monotonically_with_budget():
    model, x, y = _data(8, seed=5)

    def p_true(q):
        res = SimBA(L2(0.6), queries=q)(model, x, y)
        return model(res.x_adv).softmax(1).gather(1, y[:, None]).detach()

    p0 = model(x).softmax(1).gather(1, y[:, None]).detach()
    p1, p2 = p_true(20), p_true(80)
    assert bool((p1 <= p0 + 1e-7).all() and (p2 <= p1 + 1e-7).all())


def test_simba_bad_arguments():
    with pytest.raises(TypeError, match="threat"):
        SimBA(L1(1.0))
    with pytest.raises(ValueError, match="basis"):
        SimBA(Linf(0.1), basis="wavelet")
