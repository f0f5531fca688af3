"""Shared fixtures (small models with known geometry, seeded data) and the one-thread rule.

The models and data builders themselves are in ``tests/helpers.py``.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings
from tests.helpers import LinearModel, SmallCNN

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


@pytest.fixture
def linear_model() -> LinearModel:
    return LinearModel(20, 4).eval()


@pytest.fixture
def small_cnn() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN().eval()


@pytest.fixture(scope="module")
def linear4() -> tuple[LinearModel, torch.Tensor, torch.Tensor]:
    """A 4-class linear model on R^20 (seed 1), 48 points N(0, 0.25) and its predictions as labels."""
    model = LinearModel(20, 4, seed=1).eval()
    x = torch.randn(48, 20, generator=torch.Generator().manual_seed(0)) * 0.5
    with torch.no_grad():
        return model, x, model(x).argmax(1)
