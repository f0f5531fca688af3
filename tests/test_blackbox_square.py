"""Square Attack: invariants, exact query accounting, scores only, known answers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.geometry import exact_min_distance
from tests.helpers import TinyConv, linear_problem
from torch import nn

from advx.attacks import PGD
from advx.attacks.square import Square, _bump, p_schedule
from advx.model import PassCounter
from advx.threat import L1, L2, Linf


class Counting(PassCounter):
    """Counts rows evaluated (``forwards``); refuses inputs that carry gradients (scores only)."""

    def forward(self, x):
        if x.requires_grad or torch.is_grad_enabled():
            raise AssertionError("Square asked for a gradient")
        return super().forward(x)


def test_p_schedule_halves_at_the_papers_iterations_rescaled_to_the_budget():
    assert p_schedule(0.8, 0, 10000) == 0.8
    assert p_schedule(0.8, 10, 10000) == 0.8
    assert p_schedule(0.8, 11, 10000) == 0.4
    assert p_schedule(0.8, 201, 10000) == 0.1
    assert p_schedule(0.8, 9999, 10000) == 0.8 / 512
    assert p_schedule(0.8, 6, 5000) == 0.4  # 6 of 5000 is 12 of 10000
    ps = [p_schedule(0.8, i, 1000) for i in range(1000)]
    assert all(a >= b for a, b in zip(ps, ps[1:]))


def test_l2_bump_has_unit_norm_and_opposite_halves():
    b = _bump(7, 7, True, torch.float64, torch.device("cpu"))
    assert abs(float(b.norm()) - 1) < 1e-12
    assert bool((b[:3] > 0).all() and (b[3:] < 0).all())
    assert b[1].argmax() == 3  # each half peaks at its centre


@pytest.mark.parametrize("kind,eps", [(Linf, 0.1), (L2, 0.7)])
@settings(max_examples=8)
@given(seed=st.integers(0, 1000), lo=st.sampled_from([0.0, -1.0]), channels=st.sampled_from([1, 3]))
def test_inside_ball_and_bounds_with_exact_query_accounting(kind, eps, seed, lo, channels):
    model = Counting(TinyConv(channels=channels)).eval()
    g = torch.Generator().manual_seed(seed)
    x = lo + (1 - lo) * torch.rand(4, channels, 8, 8, generator=g)
    y = torch.randint(0, 5, (4,), generator=g)
    threat = kind(eps, bounds=(lo, 1.0))
    res = Square(threat, queries=32, restarts=2)(model, x, y)
    assert res.x_adv.shape == x.shape and res.x_adv.dtype == x.dtype
    assert bool((res.x_adv >= lo).all() and (res.x_adv <= 1).all())
    assert bool((threat.distance(res.x_adv, x) <= eps * (1 + 1e-5)).all())
    assert int(res.gradients.sum()) == 0
    assert int(res.queries.sum()) == model.forwards  # every forward is counted, per sample
    assert bool((res.queries <= 32).all())  # a hard budget for the whole call
    # a sample the attack could not fool used exactly the whole budget: 2 for the contract, 15 per restart
    assert bool((res.queries[~res.success] == 32).all())


def test_samples_already_fooled_cost_only_the_contract_queries():
    model = TinyConv().eval()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        wrong = (model(x).argmax(1) + 1) % 5
    res = Square(Linf(0.1), queries=50)(model, x, wrong)
    assert res.success.all() and torch.equal(res.queries, torch.full((6,), 2))
    assert torch.equal(res.x_adv, x)


@pytest.mark.parametrize("kind", [Linf, L2])
def test_deterministic_under_generator(kind):
    model = TinyConv().eval()
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    attack = Square(kind(0.05 if kind is Linf else 0.3), queries=40)
    a = attack(model, x, y, generator=torch.Generator().manual_seed(7))
    b = attack(model, x, y, generator=torch.Generator().manual_seed(7))
    c = attack(model, x, y, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.queries, b.queries)
    assert not torch.equal(a.x_adv, c.x_adv)


def test_linf_known_answer_on_a_linear_model():
    """Succeeds on every sample at 1.3x the exact minimal Linf distance, on none below it."""
    lin, x, y = linear_problem(12)
    d_inf = exact_min_distance(lin, x, y, "linf")
    box = (-10.0, 10.0)
    eps = float(d_inf.max()) * 1.3
    res = Square(Linf(eps, bounds=box), queries=400)(lin, x, y)
    assert res.success.all(), res.success
    low = Square(Linf(float(d_inf.min()) * 0.95, bounds=box), queries=200)(lin, x, y)
    assert not low.success.any()


def test_l2_known_answer_on_a_linear_model():
    lin, x, y = linear_problem(12, seed=1)
    d_2 = exact_min_distance(lin, x, y, "l2")
    box = (-10.0, 10.0)
    res = Square(L2(float(d_2.max()) * 1.5, bounds=box), queries=600)(lin, x, y)
    assert res.success.float().mean() >= 0.9, res.success
    low = Square(L2(float(d_2.min()) * 0.95, bounds=box), queries=200)(lin, x, y)
    assert not low.success.any()


def test_targeted_reaches_the_target_and_flat_and_1d_inputs_work():
    lin, x, y = linear_problem(6, seed=2)
    d_inf = exact_min_distance(lin, x, y, "linf")
    target = (y + 1) % 4
    res = Square(Linf(float(d_inf.max()) * 4, bounds=(-10, 10)), queries=400)(lin, x, y, target)
    assert res.success.float().mean() >= 5 / 6
    assert torch.equal(res.success, res.logits.argmax(1) == target)
    conv1d = nn.Sequential(nn.Conv1d(2, 3, 5), nn.Flatten(), nn.Linear(3 * 28, 4)).eval()
    sig = torch.rand(4, 2, 32, generator=torch.Generator().manual_seed(0))
    res = Square(L2(2.0), queries=60)(conv1d, sig, conv1d(sig).argmax(1))
    assert bool((res.distance <= 2.0 + 1e-5).all()) and res.success.any()


def test_as_strong_as_white_box_pgd_on_a_small_cnn():
    """Scores only, 200 queries: within one sample of PGD-50 x 3 restarts (measured: 13/16 vs 12/16)."""
    model = TinyConv(classes=10)
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(1)
    res = Square(Linf(0.1), queries=200)(model, x, y)
    pgd = PGD(Linf(0.1), steps=50, restarts=3)(model, x, y)
    assert res.success.sum() >= pgd.success.sum() - 1 and res.success.float().mean() >= 0.7
    assert res.gradients.sum() == 0


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="threat"):
        Square(L1(1.0))
    with pytest.raises(ValueError, match="queries"):
        Square(Linf(0.1), queries=0)
    with pytest.raises(ValueError, match="p_init"):
        Square(Linf(0.1), p_init=0)
