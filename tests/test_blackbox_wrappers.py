"""ScoresOnly / LabelOnly: what they expose, budgets, numpy callables, no gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advx.attacks import PGD
from advx.attacks.square import Square
from advx.model import LabelOnly, QueryBudgetExceeded, ScoresOnly
from advx.threat import Linf


def _linear(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w, b = torch.randn(4, 12, generator=g), torch.randn(4, generator=g)
    lin = nn.Linear(12, 4).eval()
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    w_np, b_np = w.double().numpy(), b.double().numpy()
    return lin, (lambda a: a.astype(np.float64) @ w_np.T + b_np)


def test_scores_only_counts_rows_and_refuses_to_pass_the_budget():
    lin, _ = _linear()
    box = ScoresOnly(lin, budget=10)
    x = torch.rand(4, 12)
    torch.testing.assert_close(box(x), lin(x).detach())
    box(x)
    assert box.queries == 8 and box.remaining == 2
    with pytest.raises(QueryBudgetExceeded, match="8 of 10"):
        box(x)
    assert box.queries == 8  # a refused call costs nothing and evaluates nothing
    box.reset()
    assert box.remaining == 10


def test_numpy_callable_gives_the_same_attack_as_the_torch_model():
    lin, fn = _linear()
    x = torch.rand(6, 12, generator=torch.Generator().manual_seed(0))
    y = lin(x).argmax(1)
    attack = Square(Linf(0.3), queries=40)
    a = attack(lin, x, y)
    wrapped = ScoresOnly(fn, budget=6 * 40)  # queries=40 is the whole per-sample bill
    b = attack(wrapped, x, y)
    torch.testing.assert_close(b.x_adv, a.x_adv)
    assert torch.equal(a.success, b.success) and torch.equal(a.queries, b.queries)
    assert wrapped.queries == int(b.queries.sum())  # the attack's accounting is the API's bill


def test_an_attack_at_its_budget_fits_and_one_query_less_raises():
    lin, fn = _linear(1)
    x = torch.rand(3, 12, generator=torch.Generator().manual_seed(1))
    y = lin(x).argmax(1)
    q = 25
    used = Square(Linf(1e-3), queries=q)(ScoresOnly(fn), x, y).queries  # a tiny eps: nobody is fooled
    assert torch.equal(used, torch.full((3,), q))  # a hard budget: the contract's 2 forwards included
    Square(Linf(1e-3), queries=q)(ScoresOnly(fn, budget=3 * q), x, y)
    with pytest.raises(QueryBudgetExceeded):
        Square(Linf(1e-3), queries=q)(ScoresOnly(fn, budget=3 * q - 1), x, y)


def test_gradients_never_leak_through_a_black_box():
    lin, _ = _linear()
    x = torch.rand(2, 12)
    with pytest.raises(RuntimeError, match="exposes no gradients"):
        PGD(Linf(0.1), steps=2)(ScoresOnly(lin), x, lin(x).argmax(1))
    with pytest.raises(RuntimeError, match="exposes no gradients"):
        PGD(Linf(0.1), steps=2)(LabelOnly(lin), x, lin(x).argmax(1))


def test_softmax_scores_are_probabilities_with_the_same_ranking():
    lin, _ = _linear()
    x = torch.rand(5, 12)
    p = ScoresOnly(lin, softmax=True)(x)
    torch.testing.assert_close(p.sum(1), torch.ones(5))
    assert torch.equal(p.argmax(1), lin(x).argmax(1))


def test_label_only_returns_one_hot_of_the_top_label():
    lin, fn = _linear()
    x = torch.rand(7, 12)
    out = LabelOnly(fn)(x)
    assert out.shape == (7, 4) and torch.equal(out.sum(1), torch.ones(7))
    assert torch.equal(out.argmax(1), lin(x).argmax(1))
    labels_fn = lambda a: fn(a).argmax(1)  # noqa: E731 -- an API that returns labels only
    assert torch.equal(LabelOnly(labels_fn, num_classes=4)(x), out)
    with pytest.raises(ValueError, match="num_classes"):
        LabelOnly(labels_fn)(x)
    with pytest.raises(ValueError, match="outside"):
        LabelOnly(lambda a: np.full(len(a), 3), num_classes=2)(x)


def test_bad_arguments_and_outputs_are_named():
    with pytest.raises(TypeError, match="model"):
        ScoresOnly(3)
    with pytest.raises(ValueError, match="budget"):
        ScoresOnly(lambda a: a, budget=-1)
    with pytest.raises(ValueError, match="array"):
        ScoresOnly(lambda a: a, array="jax")
    with pytest.raises(ValueError, match="shape"):
        ScoresOnly(lambda a: a.sum())(torch.rand(3, 2))
