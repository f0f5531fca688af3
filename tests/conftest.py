"""Shared fixtures: small models with known geometry, seeded data."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings
from torch import nn

settings.register_profile(
    "advx", max_examples=int(os.environ.get("ADVX_HYPOTHESIS_EXAMPLES", "25")), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("advx")
torch.set_num_threads(1)  # the test models are tiny: threads cost more than they give


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Every test, and every fixture it sets up, starts on one intra-op thread.

    A CLI run inside a test (``advx train`` picks its own thread count) must not
    leak into the tests after it; this replaces per-file one-thread fixtures.
    """
    torch.set_num_threads(1)


class LinearModel(nn.Module):
    """logits = W x + b on flattened inputs: every decision boundary is a hyperplane."""

    def __init__(self, in_features: int, classes: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.linear = nn.Linear(in_features, classes)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(classes, in_features, generator=g))
            self.linear.bias.copy_(torch.randn(classes, generator=g) * 0.1)

    def forward(self, x):
        return self.linear(x.flatten(1))


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 7 * 7, classes),
        )

    def forward(self, x):
        return self.net(x)


@pytest.fixture
def linear_model() -> LinearModel:
    return LinearModel(20, 4).eval()


@pytest.fixture
def small_cnn() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN().eval()
