"""Randomized smoothing on a linear model, where the smoothed classifier is known in closed form.

For f(x) = [w.x + b > 0] and noise N(0, sigma^2 I), P(f(x + e) = 1) = Phi((w.x + b) / (|w| sigma)), so
the exact certified radius sigma * Phi^-1(p_A) is the distance |w.x + b| / |w| to the decision boundary.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advx.defenses.smoothing import ABSTAIN, certified_accuracy, certify, predict, sample_counts

stats = pytest.importorskip("scipy.stats")

SIGMA = 0.5
W = torch.tensor([3.0, -4.0])  # |w| = 5
B = 0.5


class Linear2(nn.Module):
    """Two logits (0, w.x + b): class 1 on the positive side of the hyperplane."""

    def __init__(self):
        super().__init__()
        self.eval()

    def forward(self, x):
        s = x @ W.to(x.dtype) + B
        return torch.stack([torch.zeros_like(s), s], 1)


def points(distances):
    """Points at signed distance d from the boundary (along the unit normal)."""
    base = -B * W / W.dot(W)  # on the boundary
    return torch.stack([base + d * W / W.norm() for d in distances]).double()


def test_counts_follow_phi_of_margin_over_sigma():
    n = 20_000
    d = torch.tensor([-0.5, 0.0, 0.25, 0.8])
    counts = sample_counts(Linear2(), points(d), SIGMA, n, batch_size=4096, generator=torch.Generator().manual_seed(0))
    p = torch.tensor(stats.norm.cdf((d / SIGMA).numpy()))
    assert counts.sum(1).tolist() == [n] * 4
    assert ((counts[:, 1] / n - p).abs() <= 5 * (p * (1 - p) / n).sqrt() + 1e-9).all()


def test_certified_radius_matches_the_closed_form():
    d = [0.25, -0.5, 0.75, 1.0]
    n, alpha = 100_000, 0.001
    cert = certify(Linear2(), points(d), SIGMA, n0=100, n=n, alpha=alpha, batch_size=25_000,
                   generator=torch.Generator().manual_seed(1))
    assert cert.prediction.tolist() == [1, 0, 1, 1]
    # the radius is exactly sigma * Phi^-1 of the one-sided Clopper-Pearson bound of the observed count ...
    k = cert.count.double().numpy()
    expected = SIGMA * stats.norm.ppf(stats.beta.ppf(alpha, k, n - k + 1))
    assert torch.allclose(cert.radius, torch.from_numpy(expected), rtol=1e-12)
    # ... which is a sound and tight estimate of the true radius |w.x + b| / |w|
    true = torch.tensor(d).abs().double()
    assert (cert.radius <= true).all()
    assert (cert.radius >= true - 0.05 * SIGMA).all()


def test_all_votes_for_one_class_give_the_largest_certifiable_radius():
    n, alpha = 1000, 0.01
    cert = certify(Linear2(), points([10.0]), SIGMA, n0=10, n=n, alpha=alpha, generator=torch.Generator().manual_seed(2))
    assert cert.count.item() == n
    assert cert.p_lower.item() == pytest.approx(alpha ** (1 / n), rel=1e-12)  # CP bound with k = n
    assert cert.radius.item() == pytest.approx(SIGMA * stats.norm.ppf(alpha ** (1 / n)), rel=1e-9)


def test_abstains_on_the_boundary_and_predicts_off_it():
    x = points([0.0, 0.0, 1.0, -1.0])
    g = torch.Generator().manual_seed(3)
    cert = certify(Linear2(), x, SIGMA, n0=100, n=2000, alpha=0.001, generator=g)
    assert cert.prediction[:2].tolist() == [ABSTAIN, ABSTAIN] and cert.radius[:2].tolist() == [0.0, 0.0]
    pred = predict(Linear2(), x, SIGMA, n=2000, alpha=0.001, generator=g)
    assert pred.tolist() == [ABSTAIN, ABSTAIN, 1, 0]


def test_certified_accuracy_is_a_non_increasing_step_curve():
    cert = certify(Linear2(), points([0.2, 0.6, -0.4, 1.0]), SIGMA, n0=50, n=5000, alpha=0.001,
                   generator=torch.Generator().manual_seed(4))
    y = torch.tensor([1, 1, 1, 1])  # the third point is misclassified
    radii = [0.0, 0.1, 0.3, 0.5, 0.9, 2.0]
    curve = certified_accuracy(cert, y, radii)
    assert curve == sorted(curve, reverse=True)
    assert curve[0] == 0.75 and curve[-1] == 0.0
    for r, acc in zip(radii, curve):
        assert acc == sum(bool(c and rad >= r) for c, rad in zip((cert.prediction == y).tolist(),
                                                                  cert.radius.tolist())) / 4


def test_deterministic_under_a_generator_and_bad_arguments_are_named():
    x = points([0.3])
    a = certify(Linear2(), x, SIGMA, n0=10, n=500, generator=torch.Generator().manual_seed(5))
    b = certify(Linear2(), x, SIGMA, n0=10, n=500, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.radius, b.radius) and not math.isnan(a.radius.item())
    with pytest.raises(ValueError, match="sigma"):
        certify(Linear2(), x, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        certify(Linear2(), x, SIGMA, alpha=1.5)
    with pytest.raises(ValueError, match="n must be"):
        predict(Linear2(), x, SIGMA, n=0)
