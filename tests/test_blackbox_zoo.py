"""Square and HopSkipJump on the committed MNIST model, within documented budgets.

Figures (docs/blackbox.md, benchmarks/blackbox.py) on 10 test images: Square Linf 0.3 fools all 10 with a
median of 7 queries; HopSkipJump L2 4.0 (early stop) fools 9 of 10 within 300 queries.
"""

from __future__ import annotations

import pytest

from advx.attacks.hopskipjump import HopSkipJump
from advx.attacks.square import Square
from advx.data import load
from advx.model import LabelOnly, ScoresOnly
from advx.threat import L2, Linf
from advx.zoo import load_model


@pytest.fixture(scope="module")
def standard():
    data = load("mnist", "test", n=10)
    return load_model("mnist-cnn"), data.x, data.y


def test_square_fools_the_standard_model_within_300_queries(standard):
    model, x, y = standard
    api = ScoresOnly(model, budget=10 * (300 + 2))
    res = Square(Linf(0.3), queries=300)(api, x, y)
    assert res.success.float().mean() >= 0.9
    assert res.queries[res.success].float().median() <= 50


def test_hopskipjump_fools_the_standard_model_with_labels_only(standard):
    model, x, y = standard
    api = LabelOnly(model, budget=10 * (300 + 2))
    res = HopSkipJump(L2(4.0), queries=300, early_stop=True)(api, x, y)
    assert res.success.float().mean() >= 0.8
    assert bool((res.distance <= 4.0 + 1e-4).all())
