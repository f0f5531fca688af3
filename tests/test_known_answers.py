"""Known answers: on a linear model the minimal adversarial distance is exact.

A bounded attack at eps a little above the exact distance must succeed on every
sample; a little below it must succeed on none (no attack can).
"""

from __future__ import annotations

import pytest
import torch
from tests.geometry import exact_min_distance, halfspace_distances
from tests.helpers import LinearModel

from advx.attacks import PGD
from advx.threat import L1, L2, Linf

WIDE = (-50.0, 50.0)  # a box that never binds near x


@pytest.fixture(scope="module")
def problem(linear4):
    model, x, y = linear4  # labels are the predictions: clean accuracy 100% by construction
    return model, x[:16], y[:16]


@pytest.mark.parametrize("kind,norm", [(Linf, "linf"), (L2, "l2"), (L1, "l1")])
def test_pgd_succeeds_just_above_and_fails_just_below_the_exact_distance(problem, kind, norm):
    """Targeted at the nearest class the margin is linear, so PGD solves it exactly:
    success on every sample at 1.05x the exact distance, on none at 0.95x.
    Untargeted PGD can settle on the wrong class (the margin is a max of linear
    functions, and maximising it has local optima: the reason APGD-T exists), so
    for it we ask for most samples above and, necessarily, none below."""
    model, x, y = problem
    with torch.no_grad():
        exact = exact_min_distance(model, x, y, norm)
        nearest = halfspace_distances(model, x, y, norm).argmin(1)  # the class whose boundary is closest
    for factor, expect in ((1.05, True), (0.95, False)):
        targeted, untargeted = [], []
        for i in range(len(x)):  # per-sample eps: each at its own exact distance
            threat = kind(float(exact[i]) * factor, bounds=WIDE)
            xi, yi = x[i : i + 1], y[i : i + 1]
            res = PGD(threat, steps=40, loss="margin")(model, xi, yi, target=nearest[i : i + 1])
            targeted.append(bool(res.success))
            res = PGD(threat, steps=40, restarts=3, loss="margin")(model, xi, yi)
            untargeted.append(bool(res.success))
        assert all(w == expect for w in targeted), f"{norm} x{factor}: {sum(targeted)}/{len(x)} targeted"
        if expect:
            assert sum(untargeted) >= 0.9 * len(x), f"{norm} x{factor}: {sum(untargeted)}/{len(x)} untargeted"
        else:
            assert not any(untargeted)


def test_fgsm_is_optimal_for_a_binary_linear_model():
    """With two classes the loss gradient points along w_1 - w_0: one step is the exact answer."""
    from advx.attacks import FGSM

    model = LinearModel(20, 2, seed=2).eval()
    x = torch.randn(16, 20, generator=torch.Generator().manual_seed(1)) * 0.5
    y = model(x).argmax(1)
    exact = exact_min_distance(model, x, y, "linf")
    for i in range(len(x)):
        above = FGSM(Linf(float(exact[i]) * 1.01, bounds=WIDE))(model, x[i : i + 1], y[i : i + 1])
        below = FGSM(Linf(float(exact[i]) * 0.99, bounds=WIDE))(model, x[i : i + 1], y[i : i + 1])
        assert bool(above.success) and not bool(below.success)
