"""Decision-based attacks (HopSkipJump, Boundary): labels only, budgets, known answers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.geometry import exact_min_distance
from tests.helpers import TinyConv, linear_problem
from torch import nn

from advx.attacks.boundary import Boundary
from advx.attacks.hopskipjump import HopSkipJump
from advx.model import LabelOnly
from advx.threat import L1, L2, Linf

ATTACKS = {
    "hsj-l2": lambda eps, q: HopSkipJump(L2(eps), queries=q),
    "hsj-linf": lambda eps, q: HopSkipJump(Linf(eps), queries=q),
    "boundary": lambda eps, q: Boundary(L2(eps), queries=q),
}


@pytest.mark.parametrize("name", ATTACKS)
def test_label_only_view_gives_the_identical_attack(name):
    """The attack reads nothing but the top label: scores or one-hot, same result."""
    model = TinyConv()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(1)
    attack = ATTACKS[name](10.0, 300)
    a = attack(model, x, y)
    b = attack(LabelOnly(model), x, y)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.queries, b.queries)
    assert a.success.any() and a.gradients.sum() == 0


@pytest.mark.parametrize("name", ATTACKS)
@settings(max_examples=6)
@given(seed=st.integers(0, 1000), queries=st.integers(3, 120), eps=st.sampled_from([0.05, 0.5, 10.0]))
def test_budget_never_exceeded_and_result_inside_threat(name, seed, queries, eps):
    model = TinyConv()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 1, 8, 8, generator=g)
    y = torch.randint(0, 5, (4,), generator=g)
    attack = ATTACKS[name](eps, queries)
    res = attack(model, x, y)
    assert bool((res.queries <= queries).all()), res.queries  # a hard budget: the contract's 2 included
    assert bool((res.x_adv >= 0).all() and (res.x_adv <= 1).all())
    assert bool((attack.threat.distance(res.x_adv, x) <= eps * (1 + 1e-5)).all())


@pytest.mark.parametrize("name,ratio", [("hsj-l2", 1.15), ("hsj-linf", 1.7), ("boundary", 1.1)])
def test_distances_approach_the_exact_minimum_on_a_linear_model(name, ratio):
    """Never below the exact minimal distance (impossible), and close to it in 1000 queries."""
    lin, x, y = linear_problem(8)
    d_2, d_inf = exact_min_distance(lin, x, y, "l2"), exact_min_distance(lin, x, y, "linf")
    attack = ATTACKS[name](100.0, 1000)
    attack.threat = type(attack.threat)(100.0, bounds=(-10.0, 10.0))
    res = attack(lin, x, y)
    exact = d_inf if name == "hsj-linf" else d_2
    assert res.success.all()
    assert bool((res.distance >= exact * (1 - 1e-4)).all())
    assert bool((res.distance <= exact * ratio).all()), res.distance / exact


def test_more_queries_never_hurt_hopskipjump():
    model = TinyConv()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = model(x).argmax(1)
    d = [HopSkipJump(L2(10.0), queries=q)(model, x, y).distance.median() for q in (100, 400, 1200)]
    assert d[0] >= d[1] >= d[2]


def test_targeted_hopskipjump_starts_from_a_sample_of_the_target_class():
    lin, x, y = linear_problem(12, seed=3)
    target = (y + 1) % 4
    res = HopSkipJump(L2(100.0, bounds=(-10.0, 10.0)), queries=600, init_tries=1)(lin, x, y, target)
    has_source = torch.tensor([bool((y == t).any()) for t in target])
    assert torch.equal(res.success, res.logits.argmax(1) == target)
    assert bool(res.success[has_source].all())


def test_early_stop_spends_fewer_queries_once_within_eps():
    model = TinyConv()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    y = model(x).argmax(1)
    full = HopSkipJump(L2(3.0), queries=600)(model, x, y)
    early = HopSkipJump(L2(3.0), queries=600, early_stop=True)(model, x, y)
    assert torch.equal(early.success, full.success) and early.success.any()
    assert int(early.queries.sum()) < int(full.queries.sum())


def test_no_adversarial_start_leaves_the_sample_unchanged():
    const = nn.Linear(20, 3).eval()
    with torch.no_grad():
        const.weight.zero_()
        const.bias.copy_(torch.tensor([5.0, 0.0, 0.0]))  # always class 0
    x = torch.rand(3, 20)
    y = torch.zeros(3, dtype=torch.long)
    for attack in (HopSkipJump(L2(10.0), queries=50), Boundary(L2(10.0), queries=50)):
        res = attack(const, x, y)
        assert torch.equal(res.x_adv, x) and not res.success.any()
        assert bool((res.queries <= 52).all())


def test_bad_threats_are_named():
    with pytest.raises(TypeError, match="threat"):
        HopSkipJump(L1(1.0))
    with pytest.raises(TypeError, match="threat"):
        Boundary(Linf(0.1))
    with pytest.raises(ValueError, match="queries"):
        HopSkipJump(L2(1.0), queries=0)
