"""Models for the evaluation tests, each built to trigger one check (and tests of the EOT wrapper).

Other evaluation tests import the builders from here; the CLI tests load them as
``--model test_evaluation_models:<name>`` with ``tests/`` on PYTHONPATH.
"""

from __future__ import annotations

import functools
import os
import time

import pytest
import torch
from torch import nn

from advx import evaluate
from advx.evaluation import EOT


@functools.lru_cache(maxsize=1)
def _centroids() -> tuple[torch.Tensor, torch.Tensor]:
    from advx.data import load

    d = load("fashion-mnist", split="train", n=2000, seed=0)
    x = d.x.flatten(1)
    mu = torch.stack([x[d.y == c].mean(0) for c in range(10)])
    return mu, -0.5 * mu.pow(2).sum(1)


class Centroid(nn.Module):
    """Nearest class mean on real Fashion-MNIST: logits_c = <x, mu_c> - |mu_c|^2 / 2 (a linear model)."""

    def __init__(self):
        super().__init__()
        mu, b = _centroids()
        self.linear = nn.Linear(784, 10)
        with torch.no_grad():
            self.linear.weight.copy_(mu)
            self.linear.bias.copy_(b)

    def forward(self, x):
        return self.linear(x.flatten(1))


class Quantized(nn.Module):
    """Inputs rounded to ``levels`` grey levels first: the gradient is zero everywhere."""

    def __init__(self, base: nn.Module, levels: int = 8):
        super().__init__()
        self.base, self.levels = base, levels

    def forward(self, x):
        return self.base(torch.round(x * self.levels) / self.levels)


class Noisy(nn.Module):
    """Gaussian noise added to the input at every forward pass: a randomised model."""

    def __init__(self, base: nn.Module, sigma: float = 0.2):
        super().__init__()
        self.base, self.sigma = base, sigma

    def forward(self, x):
        return self.base(x + self.sigma * torch.randn_like(x))


class Softmax100(nn.Module):
    """Returns softmax(100 * logits): probabilities, saturated."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    def forward(self, x):
        return torch.softmax(100 * self.base(x), dim=1)


class Band(nn.Module):
    """Class 1 only while the mean pixel lies in a narrow band (0.55, 0.65); class 0 elsewhere.

    From mean pixel 0.5, one gradient-sign step of 0.1 lands in the band (fooled),
    a step of 0.3 jumps over it (not fooled): a one-step attack is not monotone in eps.
    """

    def forward(self, x):
        t = x.flatten(1).mean(1)
        bump = 10 * (0.05 - (t - 0.6).abs())
        return torch.stack([torch.zeros_like(t), bump, torch.full_like(t, -5.0)], dim=1)


class Slow(nn.Module):
    """The centroid model, sleeping a little per forward (so a test can kill a run mid-way)."""

    def __init__(self):
        super().__init__()
        self.base = Centroid()
        self.delay = float(os.environ.get("ADVX_TEST_DELAY", "0"))

    def forward(self, x):
        time.sleep(self.delay)
        return self.base(x)


def centroid() -> nn.Module:
    return Centroid().eval()


def slow() -> nn.Module:
    return Slow().eval()


def quantized() -> nn.Module:
    return Quantized(Centroid()).eval()


def band_data(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = (0.5 + 0.01 * (torch.rand(n, 1, 8, 8, generator=g) - 0.5)).clamp(0, 1)
    return x, torch.zeros(n, dtype=torch.long)


# ------------------------------------------------------------------ EOT wrapper
def test_eot_averages_logits_and_gradients_over_passes():
    torch.manual_seed(0)
    base = nn.Linear(5, 3)
    noisy = Noisy(base, sigma=0.5).eval()
    x = torch.rand(4, 5, requires_grad=True)
    torch.manual_seed(1)
    out = EOT(noisy, 3)(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    torch.manual_seed(1)
    passes = noisy(x.repeat(3, 1)).reshape(3, 4, 3)  # the 3 passes run as one batch: pass k is rows 4k..4k+3
    assert torch.allclose(out, passes.mean(0), atol=1e-6)
    # linear base: every pass has the same Jacobian, so the EOT gradient equals it
    assert torch.allclose(g, base.weight.sum(0).expand_as(x), atol=1e-6)


def test_eot_reduces_the_variance_of_a_noisy_model():
    torch.manual_seed(0)
    noisy = Noisy(nn.Linear(5, 3), sigma=1.0).eval()
    x = torch.rand(1, 5).expand(400, 5)
    with torch.no_grad():
        v1 = noisy(x).var(0).mean()
        v16 = EOT(noisy, 16)(x).var(0).mean()
    assert v16 < v1 / 8  # variance of a mean of 16 iid passes is 1/16


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_eot_rejects_bad_pass_counts(bad):
    with pytest.raises(ValueError, match="n must be"):
        EOT(nn.Linear(2, 2), bad)
    x, y = band_data(4)
    with pytest.raises(ValueError, match="eot must be"):
        evaluate(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), (x, y), "linf:0.05", attacks="fgsm", eot=bad)
