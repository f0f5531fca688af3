"""Shared fixtures (small models with known geometry, seeded data) and the one-thread rule.

The models and data builders themselves are in ``tests/helpers.py``.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings
from tests.helpers import LinearModel, SmallCNN

_COMMON = {"max_examples": int(os.environ.get("ADVX_HYPOTHESIS_EXAMPLES", "25")), "deadline": None,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]}
#: the default: derandomised (each test draws the same examples on every run and machine) and no example
#: database, so CI cannot fail at random; a failure prints the example and a reproduction blob
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, **_COMMON)
#: exploration: fresh random examples each run (pass --hypothesis-seed=N to repeat one), failures remembered
settings.register_profile("dev", print_blob=True, **_COMMON)
settings.register_profile("advx", parent=settings.get_profile("ci"))  # the old name, kept for callers
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
torch.set_num_threads(1)  # the test models are tiny: threads cost more than they give

#: devices the contract suite runs on: the CPU, plus the GPU where there is one
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pytest_sessionstart(session: pytest.Session) -> None:
    """Print at session start (also under -q) which hypothesis profile and seed the run uses, and the devices."""
    config = session.config
    current = settings()
    seed = config.getoption("hypothesis_seed", None) if config.pluginmanager.hasplugin("hypothesispytest") else None
    how = "derandomised" if current.derandomize else f"random, seed {seed if seed is not None else 'fresh'}"
    line = (f"hypothesis profile: {PROFILE} ({how}, max_examples={current.max_examples}; HYPOTHESIS_PROFILE=dev "
            f"for random draws) | devices: {', '.join(DEVICES)}")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each device the suite runs on: "cpu", and "cuda" where torch.cuda.is_available()."""
    return torch.device(request.param)


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
