"""Monotonicity on a small trained CNN (seeds fixed): robust accuracy never
rises with eps, with more steps, or with more restarts."""

from __future__ import annotations

import pytest
import torch
from tests.helpers import SmallCNN

from advx.attacks import PGD
from advx.data import load
from advx.threat import L2, Linf


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    train = load("mnist", split="train")
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        for idx in torch.randperm(len(train.y), generator=g).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(train.x[idx]), train.y[idx]).backward()
            opt.step()
    model.eval()
    test = load("mnist", split="test", n=100)
    with torch.no_grad():
        assert (model(test.x).argmax(1) == test.y).float().mean() > 0.9  # a real classifier
    return model, test.x, test.y


def _robust(model, x, y, attack):
    return attack(model, x, y).robust_accuracy()


@pytest.mark.parametrize("kind,grid", [(Linf, [0.0, 0.05, 0.1, 0.2]), (L2, [0.0, 0.75, 1.5, 2.5])])
def test_robust_accuracy_never_rises_with_eps(trained, kind, grid):
    model, x, y = trained
    accs = [_robust(model, x, y, PGD(kind(e), steps=20)) for e in grid]
    assert all(a >= b for a, b in zip(accs, accs[1:])), accs
    assert accs[0] > 0.9 and accs[-1] < accs[0] - 0.3  # the attack does something


def test_robust_accuracy_never_rises_with_steps_or_restarts(trained):
    model, x, y = trained
    by_steps = [_robust(model, x, y, PGD(Linf(0.1), steps=s)) for s in (2, 5, 20)]
    assert all(a >= b for a, b in zip(by_steps, by_steps[1:])), by_steps
    by_restarts = [_robust(model, x, y, PGD(Linf(0.08), steps=10, restarts=r)) for r in (1, 2, 3)]
    assert all(a >= b for a, b in zip(by_restarts, by_restarts[1:])), by_restarts


def test_early_stopping_saves_gradients_without_weakening(trained):
    model, x, y = trained
    early = PGD(Linf(0.15), steps=20)(model, x, y)
    full = PGD(Linf(0.15), steps=20, early_stop=False)(model, x, y)
    assert early.gradients.sum() < full.gradients.sum()
    assert early.robust_accuracy() <= full.robust_accuracy() + 0.02
