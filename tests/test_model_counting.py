"""advx.model.PassCounter, the one counter of passes at the model: known counts for known call patterns, and
an attack's own ledger (result.queries / result.gradients, advx.model.QueryCounter) equal to what it measured."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from advx.attacks import PGD
from advx.model import (
    Budget,
    BudgetExhausted,
    PassCounter,
    QueryBudgetExceeded,
    ScoresOnly,
    attack_mode,
    input_gradient,
)
from advx.threat import Linf


def _sure_linear(seed: int = 0) -> nn.Module:
    """Class 0 by a margin of 100: no attack inside Linf(0.1) of [0, 1]^4 fools it, so none stops early."""
    torch.manual_seed(seed)
    lin = nn.Linear(4, 3)
    with torch.no_grad():
        lin.bias.copy_(torch.tensor([100.0, 0.0, 0.0]))
    return lin.eval()


@settings(max_examples=10)
@given(n=st.integers(1, 6), per_call=st.integers(1, 4), forwards=st.integers(0, 3), gradients=st.integers(0, 3))
def test_known_calls_give_known_counts(n, per_call, forwards, gradients):
    counter = PassCounter(_sure_linear(), passes_per_call=per_call)
    x = torch.rand(n, 4)
    for _ in range(forwards):
        with torch.no_grad():
            counter(x)
    for _ in range(gradients):
        input_gradient(counter, x, lambda z: z[:, 0])
    assert counter.forwards == n * per_call * (forwards + gradients)
    assert counter.backwards == n * per_call * gradients
    assert counter.passes == counter.forwards + counter.backwards
    counter.reset()
    assert (counter.forwards, counter.backwards, counter.seconds) == (0, 0, 0.0)


def test_a_forward_that_is_never_differentiated_counts_no_backward():
    counter = PassCounter(_sure_linear())
    out = counter(torch.rand(3, 4, requires_grad=True))  # a graph is built ...
    assert (counter.forwards, counter.backwards) == (3, 0)  # ... but no gradient flowed back through it
    out.sum().backward()
    assert counter.backwards == 3


@pytest.mark.parametrize("steps", [1, 3, 7])
def test_an_attacks_declared_queries_equal_the_passes_measured_at_the_model(steps):
    """PGD on an unfoolable model runs every step on every sample: per sample, the clean forward, ``steps``
    gradients, the run's final forward and the contract's final judgement; declared and measured agree."""
    counter = PassCounter(_sure_linear())
    x, y = torch.rand(5, 4), torch.zeros(5, dtype=torch.long)
    res = PGD(Linf(0.1), steps=steps)(counter, x, y)
    assert not bool(res.success.any())
    assert res.gradients.tolist() == [steps] * 5 and res.queries.tolist() == [2 * steps + 3] * 5
    assert counter.backwards == int(res.gradients.sum()) == 5 * steps
    assert counter.forwards == int((res.queries - res.gradients).sum()) == 5 * (steps + 3)


def test_a_wrapper_built_on_the_counter_counts_the_same_and_the_guard_restores_it():
    class Float32(PassCounter):  # what benchmarks/blackbox.py does for peers that hand over float64
        def forward(self, x):
            return super().forward(x.to(torch.float32))

    plain, cast = PassCounter(_sure_linear()), Float32(_sure_linear())
    x = torch.rand(4, 4, dtype=torch.float64)
    with torch.no_grad():
        plain(x.float())
        assert cast(x).dtype == torch.float32
    assert plain.forwards == cast.forwards == 4
    cast.train()
    with pytest.warns(UserWarning, match="training mode"), attack_mode(cast) as m:
        assert not m.training and not m.model.training
    assert cast.training and cast.model.training  # handed back as it came


def test_a_shared_budget_caps_two_counters_together():
    budget = Budget(10)
    a, b = PassCounter(_sure_linear(), budget=budget), PassCounter(_sure_linear(1), budget=budget)
    x = torch.rand(4, 4)
    with torch.no_grad():
        a(x)
        b(x)  # 8 of 10 spent, by both
        with pytest.raises(BudgetExhausted, match="budget exceeded: 8 of 10 model passes used, this call asks for 4 more"):
            a(x)
    assert (a.forwards, b.forwards, budget.spent, budget.left()) == (4, 4, 8, 2) and budget.exhausted


def test_a_black_box_view_bills_queries_by_the_same_rule_before_the_model_runs():
    counter = PassCounter(_sure_linear())
    view = ScoresOnly(counter, budget=10)
    x = torch.rand(4, 4)
    view(x)
    view(x)
    assert view.queries == counter.forwards == 8 and view.remaining == 2
    with pytest.raises(QueryBudgetExceeded, match="8 of 10 inputs used, this call asks for 4 more; raise budget="):
        view(x)
    assert counter.forwards == 8 and view.bill.hit  # refused before the model saw it
    view.reset()
    assert view.remaining == 10 and not view.bill.exhausted
