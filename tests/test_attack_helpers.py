"""The shared pieces of advx.attacks.base: restarts, target ranking, argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from torch import Tensor, nn

from advx.attacks import FAB, PGD, SPSA, CarliniWagnerL2, Square
from advx.attacks.base import AttackContext, BestRuns, best_of_restarts, in_range, positive_int, top_targets
from advx.attacks.spsa import EstimatedPGD, GradientEstimator
from advx.model import QueryCounter, input_gradient
from advx.threat import L0, L1, L2, Linf


def _ctx(initial: list[bool], model=None, x: Tensor | None = None, y=None, classes: int = 4) -> AttackContext:
    n = len(initial)
    x = torch.full((n, 2), -1.0) if x is None else x
    y = torch.zeros(n, dtype=torch.long) if y is None else y
    return AttackContext(model, x, y, None, torch.Generator().manual_seed(0), QueryCounter(n), classes,
                         torch.tensor(initial, dtype=torch.bool))


# ------------------------------------------------------------------ restarts
@st.composite
def _runs(draw):
    n = draw(st.integers(1, 6))
    restarts = draw(st.integers(1, 4))
    initial = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    # small integer losses so that ties (which must not replace the kept point) happen
    loss = draw(st.lists(st.lists(st.integers(-1, 1), min_size=n, max_size=n), min_size=restarts, max_size=restarts))
    adv = draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=restarts, max_size=restarts))
    return initial, loss, adv


@given(_runs())
@example(([False, True], [[0, 0], [0, 1]], [[False, False], [False, True]]))  # a tie keeps the earlier point
def test_restarts_keep_the_first_success_else_the_highest_loss(case):
    initial, loss, adv = case
    n, restarts = len(initial), len(loss)
    calls: list[list[int]] = []

    def one_run(idx):
        r = len(calls)
        calls.append(idx.tolist())
        point = torch.full((len(idx), 2), float(r))  # the run's number marks its points
        return point, torch.tensor(loss[r], dtype=torch.float32)[idx], torch.tensor(adv[r])[idx]

    out = best_of_restarts(_ctx(initial), restarts, one_run)

    # reference, sample by sample
    chosen, done, expected_calls = [-1.0] * n, list(initial), []
    for r in range(restarts):
        todo = [i for i in range(n) if not done[i]]
        if not todo:
            break
        expected_calls.append(todo)
        for i in todo:
            best = -math.inf if chosen[i] == -1 else loss[int(chosen[i])][i]
            if adv[r][i] or loss[r][i] > best:
                chosen[i] = float(r)
            done[i] = done[i] or adv[r][i]
    assert calls == expected_calls  # later runs only on the samples not yet fooled; no empty run
    assert out[:, 0].tolist() == chosen


def test_restarts_carry_their_choice_across_calls():
    ctx = _ctx([False, False, False])
    best = BestRuns.start(ctx)
    first = [(torch.zeros(3, 2), torch.tensor([1.0, 5.0, 0.0]), torch.tensor([True, False, False]))]
    best_of_restarts(ctx, 1, lambda idx: first[0], best)
    seen = []

    def second(idx):
        seen.append(idx.tolist())
        return torch.ones(len(idx), 2), torch.tensor([3.0, 1.0])[: len(idx)], torch.zeros(len(idx), dtype=torch.bool)

    out = best_of_restarts(ctx, 1, second, best)
    assert seen == [[1, 2]]  # sample 0 was fooled by the first call
    assert out[:, 0].tolist() == [0.0, 0.0, 1.0]  # 1 keeps its higher loss (5 > 3); 2 improves (1 > 0)
    assert best.done.tolist() == [True, False, False]


# ------------------------------------------------------------------- targets
def _linear(features: int, classes: int) -> nn.Module:
    torch.manual_seed(3)
    return nn.Linear(features, classes).eval()


def test_top_targets_rank_the_other_classes_on_the_robust_samples_only():
    model = _linear(6, 5)
    x = torch.randn(7, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    initial = [False, True, False, False, True, False, False]
    ctx = _ctx(initial, model, x, y, classes=5)
    targets = list(top_targets(ctx, 3))
    assert len(targets) == 3
    assert ctx.counter.forwards.tolist() == [0 if b else 1 for b in initial]  # one counted forward, robust rows
    for i in range(7):
        if initial[i]:
            continue
        order = [c for c in logits[i].argsort(descending=True).tolist() if c != int(y[i])]
        assert [int(t[i]) for t in targets] == order[:3]
    assert len(list(top_targets(_ctx(initial, model, x, y, classes=5), 99))) == 5 - 1  # at most C - 1


def test_top_targets_yield_nothing_when_every_sample_is_already_fooled():
    model = _linear(6, 4)
    ctx = _ctx([True, True], model, torch.zeros(2, 6))
    assert list(top_targets(ctx, 3)) == []
    assert int(ctx.counter.forwards.sum()) == 0


# --------------------------------------------------------- argument checks
@given(st.integers(-5, 5), st.integers(1, 3))
def test_positive_int_accepts_exactly_the_whole_numbers_from_the_minimum(value, minimum):
    if value >= minimum:
        assert positive_int("steps", value, minimum) == value
        assert positive_int("steps", str(value), minimum) == value
    else:
        with pytest.raises(ValueError, match=f"steps must be >= {minimum}, got {value}"):
            positive_int("steps", value, minimum)


def test_positive_int_names_the_argument_for_non_numbers():
    with pytest.raises(TypeError, match="queries must be a whole number"):
        positive_int("queries", None)
    with pytest.raises(ValueError, match="queries must be a whole number"):
        positive_int("queries", "many")


@given(st.floats(-3, 3, allow_nan=False), st.booleans(), st.booleans())
def test_in_range_accepts_exactly_the_interval(value, low_open, high_open):
    inside = (value > 0 if low_open else value >= 0) and (value < 1 if high_open else value <= 1)
    if inside:
        assert in_range("rho", value, 0, 1, low_open=low_open, high_open=high_open) == value
    else:
        want = f"rho must be in \\{'(' if low_open else '['}0, 1\\{')' if high_open else ']'}"
        with pytest.raises(ValueError, match=want):
            in_range("rho", value, 0, 1, low_open=low_open, high_open=high_open)


def test_in_range_refuses_nan_and_one_sided_bounds_read_well():
    with pytest.raises(ValueError, match="lr must be > 0"):
        in_range("lr", float("nan"), 0, low_open=True)
    with pytest.raises(ValueError, match="lr must be > 0, got 0"):
        CarliniWagnerL2(L2(1.0), lr=0)
    with pytest.raises(ValueError, match="x must be <= 2"):
        in_range("x", 2.5, high=2)


@pytest.mark.parametrize("make,threat,listed", [
    (Square, L1(1.0), "Linf, L2 or Decibels"), (FAB, L0(3), "Linf, L2, L1 or Decibels"), (CarliniWagnerL2, Linf(0.1), "L2"),
])
def test_wrong_threat_names_the_attack_the_supported_threats_and_the_given_one(make, threat, listed):
    with pytest.raises(TypeError, match=f"threat: {make.__name__} supports advx.threat.{listed} threats, "
                                        f"got {type(threat).__name__}"):
        make(threat)


# ------------------------------------------------------ PGD's gradient hook
class _Exact(GradientEstimator):
    """The true gradient, uncounted: EstimatedPGD with it must retrace PGD's steps."""

    def __init__(self):
        super().__init__(samples=1, size=1.0)

    def __call__(self, ctx, x, loss_fn, idx=None):
        return input_gradient(ctx.model, x, loss_fn)


def test_estimated_pgd_runs_pgds_loop_on_the_estimators_gradient(small_cnn):
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = small_cnn(x).argmax(1)
    kw = dict(steps=5, restarts=2, loss="margin", random_start=True)
    exact = PGD(Linf(0.03), **kw)(small_cnn, x, y)
    estimated = EstimatedPGD(Linf(0.03), _Exact(), **kw)(small_cnn, x, y)
    assert torch.equal(exact.x_adv, estimated.x_adv)
    assert int(estimated.gradients.sum()) == 0 and int(exact.gradients.sum()) > 0
    spsa = SPSA(Linf(0.03), steps=2, samples=3)(small_cnn, x, y)
    assert int(spsa.gradients.sum()) == 0
