"""Carlini & Wagner L2: known answers on a linear model, the eps budget, properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from tests.geometry import halfspace_distances
from tests.helpers import WIDE
from torch import nn

from advx.attacks.cw import CarliniWagnerL2
from advx.attacks.losses import margin
from advx.threat import L2, Linf


def _data(model, n=8, seed=0, min_dist=0.2):
    """Points near 0 whose nearest boundary is further than Adam's resolution."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, model.linear.in_features, generator=g)
    y = model(x).argmax(1)
    keep = halfspace_distances(model, x, y, 2).min(1).values > min_dist
    return x[keep][:n], y[keep][:n]


def _targeted_exact(model, x, t):
    """Smallest L2 step into {z_t >= z_j for all j}: a convex QP, solved with SLSQP."""
    w, b = model.linear.weight.detach().double().numpy(), model.linear.bias.detach().double().numpy()
    out = []
    for xi, ti in zip(x.double().numpy(), t.tolist()):
        others = [j for j in range(len(w)) if j != ti]
        a = w[ti] - w[others]
        c = a @ xi + b[ti] - b[others]
        res = minimize(lambda d: d @ d, np.zeros_like(xi), jac=lambda d: 2 * d, method="SLSQP",
                       constraints=[{"type": "ineq", "fun": lambda d, a=a, c=c: a @ d + c, "jac": lambda d, a=a: a}],
                       options={"ftol": 1e-12, "maxiter": 200})
        out.append(np.sqrt(res.fun))
    return torch.tensor(out)


def test_untargeted_reaches_the_nearest_point_of_the_boundary_it_crosses(linear_model):
    x, y = _data(linear_model)
    attack = CarliniWagnerL2(L2(100.0, bounds=WIDE), steps=100, lr=2.5e-3)
    r = attack(linear_model, x, y)
    assert bool(r.success.all())
    dist = halfspace_distances(linear_model, x, y, 2)
    exact = dist.min(1).values
    assert bool((r.distance >= exact * 0.999).all())  # nothing beats the exact minimum
    # The C&W margin loss descends towards the runner-up class: a local minimum of its
    # objective. It must reach the nearest point of the half-space of the class it lands in,
    landed = dist.gather(1, r.logits.argmax(1, keepdim=True)).squeeze(1)
    assert bool((r.distance <= landed * 1.05).all()), (r.distance / landed)
    # and the global minimum wherever that class is the nearest one (most samples here).
    nearest = r.logits.argmax(1) == dist.argmin(1)
    assert int(nearest.sum()) >= len(x) // 2
    assert bool((r.distance[nearest] <= exact[nearest] * 1.05).all())


def test_targeted_matches_the_exact_quadratic_program(linear_model):
    x, y = _data(linear_model)
    t = (y + 1) % 4
    r = CarliniWagnerL2(L2(100.0, bounds=WIDE), steps=100, lr=2.5e-3)(linear_model, x, y, t)
    exact = _targeted_exact(linear_model, x, t).to(r.distance.dtype)
    assert bool((r.logits.argmax(1) == t).all())
    assert bool((r.distance >= exact * 0.999).all())
    assert bool((r.distance <= exact * 1.05).all()), (r.distance / exact)


def test_confidence_buys_a_margin_at_a_larger_distance(linear_model):
    x, y = _data(linear_model, n=4)
    plain = CarliniWagnerL2(L2(100.0, bounds=WIDE), steps=60, lr=2.5e-3, binary_search_steps=6)
    sure = CarliniWagnerL2(L2(100.0, bounds=WIDE), steps=60, lr=2.5e-3, binary_search_steps=6, confidence=2.0)
    r0, r1 = plain(linear_model, x, y), sure(linear_model, x, y)
    assert bool(r1.success.all())
    assert bool((margin(r1.logits, y) >= 2.0 - 1e-4).all())
    assert bool((r1.distance > r0.distance).all())


def test_eps_is_the_budget(linear_model):
    x, y = _data(linear_model, n=4)
    free = CarliniWagnerL2(L2(100.0, bounds=WIDE), steps=60, lr=2.5e-3, binary_search_steps=6)(linear_model, x, y)
    exact = halfspace_distances(linear_model, x, y, 2).min(1).values.float()
    small = CarliniWagnerL2(L2(0.9 * exact.min().item(), bounds=WIDE), steps=60, lr=2.5e-3, binary_search_steps=3)
    r = small(linear_model, x, y)
    assert not bool(r.success.any())  # below the minimal distance nothing can succeed
    assert bool((r.distance <= 0.9 * exact.min() + 1e-5).all())
    roomy = CarliniWagnerL2(L2(1.01 * free.distance.max().item(), bounds=WIDE), steps=60, lr=2.5e-3,
                            binary_search_steps=6)
    r = roomy(linear_model, x, y)
    assert bool(r.success.all())
    torch.testing.assert_close(r.x_adv, free.x_adv)  # a large enough budget changes nothing


class _TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 5 * 5, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 3.0), per_channel=st.booleans(),
       targeted=st.booleans())
def test_properties_on_a_small_cnn(seed, eps, per_channel, targeted):
    model = _TinyNet().train()  # the attack must put it in eval mode and restore training mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lo, hi = (torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.5])) if per_channel else (0.0, 1.0)
    threat = L2(eps, bounds=(lo, hi))
    g = torch.Generator().manual_seed(seed)
    x = threat.clip(torch.rand(5, 2, 5, 5, generator=g) * 2 - 1)
    y = torch.randint(0, 4, (5,), generator=g)
    target = (y + 1 + torch.randint(0, 3, (5,), generator=g)) % 4 if targeted else None
    attack = CarliniWagnerL2(threat, steps=8, binary_search_steps=3, initial_const=1.0)
    with pytest.warns(UserWarning, match="training mode"):
        r = attack(model, x, y, target)
    assert model.training and all(p.requires_grad for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    low, high = threat.box(x)
    assert r.x_adv.shape == x.shape and r.x_adv.dtype == x.dtype
    assert bool(((r.x_adv >= low - 1e-6) & (r.x_adv <= high + 1e-6)).all())
    assert bool((r.distance <= eps + 1e-4).all())
    model.eval()
    with torch.no_grad():
        pred = model(r.x_adv).argmax(1)
    assert torch.equal(r.success, pred == target if targeted else pred != y)
    with pytest.warns(UserWarning):
        again = attack(model.train(), x, y, target)
    assert torch.equal(again.x_adv, r.x_adv)


def test_errors():
    with pytest.raises(TypeError, match="threat"):
        CarliniWagnerL2(Linf(0.1))
    with pytest.raises(ValueError, match="steps"):
        CarliniWagnerL2(L2(1.0), steps=0)
    with pytest.raises(ValueError, match="confidence"):
        CarliniWagnerL2(L2(1.0), confidence=-1)
