"""EAD: L1 known answers on a linear model, sparsity, decision rules, budget, properties."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.geometry import halfspace_distances
from tests.helpers import WIDE, assert_judged_and_repeatable, linear_points
from torch import nn

from advx.attacks.ead import EAD
from advx.threat import L1, L2


def test_l1_distance_near_the_exact_minimum_and_sparse(linear_model):
    x, y = linear_points(linear_model, 12)
    out = {beta: EAD(L1(1000.0, bounds=WIDE), beta=beta, steps=100)(linear_model, x, y) for beta in (0.0, 0.01, 0.1)}
    dist = halfspace_distances(linear_model, x, y, 1)
    exact = dist.min(1).values
    for beta, factor in ((0.01, 1.5), (0.1, 1.15)):
        r = out[beta]
        assert bool(r.success.all())
        assert bool((r.distance >= exact * 0.999).all())  # nothing beats the exact minimum
        # Like C&W, EAD descends towards the runner-up class; it must come close to the
        # L1-nearest point of the half-space of the class it lands in (1-sparse: one coordinate).
        landed = dist.gather(1, r.logits.argmax(1, keepdim=True)).squeeze(1)
        assert bool((r.distance <= landed * factor).all()), (beta, r.distance / landed)
    # The L1 term makes the perturbation sparse.
    l0 = {beta: (r.x_adv != x).sum(1).float().median().item() for beta, r in out.items()}
    assert l0[0.0] == x.shape[1]  # beta = 0 is an L2 attack: every coordinate moves
    assert l0[0.01] <= l0[0.0] / 2
    assert l0[0.1] <= l0[0.01]


def test_decision_rules_choose_among_the_same_iterates(linear_model):
    x, y = linear_points(linear_model, 6)
    kw = dict(beta=0.05, steps=60, binary_search_steps=5)
    by_l1 = EAD(L1(1000.0, bounds=WIDE), decision_rule="L1", **kw)(linear_model, x, y)
    by_en = EAD(L1(1000.0, bounds=WIDE), decision_rule="EN", **kw)(linear_model, x, y)

    def en(r):
        d = (r.x_adv - x).flatten(1)
        return 0.05 * d.abs().sum(1) + d.pow(2).sum(1)

    assert bool(by_l1.success.all()) and bool(by_en.success.all())
    assert bool((by_l1.distance <= by_en.distance + 1e-6).all())
    assert bool((en(by_en) <= en(by_l1) + 1e-6).all())
    assert torch.equal(by_l1.queries, by_en.queries)  # the rule never changes the search


def test_eps_is_the_budget(linear_model):
    x, y = linear_points(linear_model, 4)
    exact = halfspace_distances(linear_model, x, y, 1).min(1).values.float()
    r = EAD(L1(0.9 * exact.min().item(), bounds=WIDE), steps=40, binary_search_steps=3)(linear_model, x, y)
    assert not bool(r.success.any())
    assert bool((r.distance <= 0.9 * exact.min() + 1e-5).all())


def test_targeted(linear_model):
    x, y = linear_points(linear_model, 6)
    t = (y + 2) % 4
    r = EAD(L1(1000.0, bounds=WIDE), beta=0.05, steps=80)(linear_model, x, y, t)
    assert bool(r.success.all())
    assert torch.equal(r.logits.argmax(1), t)


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 6.0), fista=st.booleans(), targeted=st.booleans())
def test_properties_on_a_small_cnn(seed, eps, fista, targeted):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 25, 4)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    threat = L1(eps)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(5, 1, 5, 5, generator=g)
    y = torch.randint(0, 4, (5,), generator=g)
    target = (y + 1 + torch.randint(0, 3, (5,), generator=g)) % 4 if targeted else None
    attack = EAD(threat, steps=8, binary_search_steps=3, initial_const=1.0, fista=fista)
    r = attack(model, x, y, target)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not model.training and all(p.requires_grad for p in model.parameters())
    assert r.x_adv.shape == x.shape and r.x_adv.dtype == x.dtype
    assert bool(((r.x_adv >= 0) & (r.x_adv <= 1)).all())
    assert bool((r.distance <= eps + 1e-4).all())
    assert_judged_and_repeatable(attack, model, x, y, target, r)


def test_errors():
    with pytest.raises(TypeError, match="threat"):
        EAD(L2(1.0))
    with pytest.raises(ValueError, match="decision_rule"):
        EAD(L1(1.0), decision_rule="L2")
    with pytest.raises(ValueError, match="beta"):
        EAD(L1(1.0), beta=-1.0)
