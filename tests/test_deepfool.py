"""DeepFool: exact answers on a linear model (one linearisation is the model), properties."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.geometry import boundary_norms, halfspace_distances
from tests.helpers import WIDE, linear_points
from torch import nn

from advx.attacks.deepfool import DeepFool
from advx.threat import L1, L2, Linf


@pytest.mark.parametrize("threat,p", [(L2(100.0, bounds=WIDE), 2), (Linf(100.0, bounds=WIDE), float("inf"))])
@pytest.mark.parametrize("overshoot", [0.0, 0.02])
def test_linear_model_exact_distance_in_one_step(linear_model, threat, p, overshoot):
    x, y = linear_points(linear_model, 16)
    r = DeepFool(threat, overshoot=overshoot)(linear_model, x, y)
    dist, a = halfspace_distances(linear_model, x, y, p), boundary_norms(linear_model, y, p)
    exact, j = dist.min(1)
    assert bool(r.success.all())
    assert bool((r.distance >= exact * 0.999).all())
    assert bool((r.distance <= exact * 1.05).all())
    # One step lands at (1 + overshoot) * (|f| + 1e-4) / ||w||: the closed form, to float precision.
    closed = (1 + overshoot) * (exact + 1e-4 / a.gather(1, j[:, None]).squeeze(1))
    torch.testing.assert_close(r.distance.double(), closed, rtol=1e-4, atol=1e-5)
    # A linear model is its own linearisation: one step, one backward per other class.
    assert torch.equal(r.gradients, torch.full_like(r.gradients, 3))


def test_candidates_limit_the_boundaries_considered(linear_model):
    x, y = linear_points(linear_model, 16)
    r = DeepFool(L2(100.0, bounds=WIDE), overshoot=0.0, candidates=2)(linear_model, x, y)
    dist = halfspace_distances(linear_model, x, y, 2)
    z = linear_model(x).detach()
    runner_up = z.scatter(1, y[:, None], -torch.inf).argmax(1)
    to_runner_up = dist.gather(1, runner_up[:, None]).squeeze(1)
    assert bool(r.success.all())
    torch.testing.assert_close(r.distance.double(), to_runner_up, rtol=1e-3, atol=1e-3)
    assert torch.equal(r.logits.argmax(1), runner_up)
    assert torch.equal(r.gradients, torch.ones_like(r.gradients))


def test_targeted_call_is_refused(linear_model):
    x, y = linear_points(linear_model, 4)
    with pytest.raises(ValueError, match="target"):
        DeepFool(L2(1.0, bounds=WIDE))(linear_model, x, y, target=(y + 1) % 4)


def test_errors():
    with pytest.raises(TypeError, match="threat"):
        DeepFool(L1(1.0))
    with pytest.raises(ValueError, match="candidates"):
        DeepFool(L2(1.0), candidates=1)
    with pytest.raises(ValueError, match="overshoot"):
        DeepFool(L2(1.0), overshoot=-0.1)


class _TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000), norm=st.sampled_from([L2, Linf]), eps=st.floats(0.0, 2.0),
       candidates=st.integers(2, 6))
def test_properties_on_a_small_cnn(seed, norm, eps, candidates):
    model = _TinyNet().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    threat = norm(eps)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(6, 1, 6, 6, generator=g)
    x[:2] = x[:2].round()  # samples on the bounds
    y = torch.randint(0, 5, (6,), generator=g)
    attack = DeepFool(threat, candidates=candidates)
    r = attack(model, x, y)
    assert not model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert r.x_adv.shape == x.shape and r.x_adv.dtype == x.dtype
    assert bool(((r.x_adv >= 0) & (r.x_adv <= 1)).all())
    assert bool((r.distance <= eps + 1e-5).all())
    with torch.no_grad():
        assert torch.equal(r.success, model(r.x_adv).argmax(1) != y)
    assert torch.equal(attack(model, x, y).x_adv, r.x_adv)
    # Unbounded, DeepFool crosses the boundary of every sample of this small smooth net.
    assert bool(DeepFool(norm(50.0), candidates=candidates)(model, x, y).success.all())
