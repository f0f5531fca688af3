"""The decibel threat: exact projection (dB_x <= bound), radius, parsing, and PGD on it."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from advx.attacks.pgd import PGD
from advx.threat import Decibels, db_x, parse_threat, snr_db


def _clips(seed: int, n: int = 4, t: int = 257, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    peaks = torch.rand(n, 1, generator=g, dtype=torch.float64) * 0.99 + 0.005
    x = (torch.rand(n, t, generator=g, dtype=torch.float64) * 2 - 1) * peaks
    return x.to(dtype)


@given(seed=st.integers(0, 2**31 - 1), db=st.floats(-80, 6), scale=st.floats(1e-4, 3.0),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_projection_is_exact_and_in_bounds(seed, db, scale, dtype):
    threat = Decibels(db)
    x = _clips(seed, dtype=dtype)
    g = torch.Generator().manual_seed(seed + 1)
    x_adv = x + torch.randn(x.shape, generator=g, dtype=torch.float64).to(dtype) * scale
    z = threat.project(x_adv, x)
    limit = x.double().abs().amax(1) * 10 ** (db / 20)
    assert bool(((z.double() - x.double()).abs().amax(1) <= limit).all())  # exact, measured in float64
    assert bool((db_x(z, x) <= db + 1e-9).all())
    assert bool((z >= -1).all() and (z <= 1).all())
    assert z.dtype == dtype and z.shape == x.shape
    assert torch.equal(threat.project(z, x), z)  # idempotent
    inside = (x_adv - x).abs() <= 0.5 * limit.to(dtype)[:, None]
    inside &= x_adv.abs() <= 1
    assert torch.equal(z[inside], x_adv[inside])  # points already inside do not move


def test_radius_and_units_known_answer():
    x = torch.tensor([[0.5, -0.25, 0.0], [0.0, 0.1, -0.05]])
    t = Decibels(-20)
    assert t.eps == pytest.approx(0.1)
    assert t.db == pytest.approx(-20)
    assert torch.allclose(t.radius(x), torch.tensor([0.05, 0.01]))
    x_adv = x + torch.tensor([[0.05, 0, 0], [0, 0, 0.001]])
    assert torch.allclose(t.db_x(x_adv, x), torch.tensor([-20.0, -40.0], dtype=torch.float64), atol=1e-5)
    assert torch.allclose(t.distance(x_adv, x), torch.tensor([0.1, 0.01]), atol=1e-6)
    assert t.with_db(-40).radius(x)[0].item() == pytest.approx(0.005)
    # SNR: signal energy 0.3125, perturbation energy 0.0025 -> 10 log10(125)
    assert snr_db(x_adv, x)[0].item() == pytest.approx(10 * math.log10(0.3125 / 0.0025))


def test_random_start_inside_ball():
    x = _clips(3)
    t = Decibels(-30)
    z = t.random_start(x, torch.Generator().manual_seed(0))
    assert bool((t.db_x(z, x) <= -30 + 1e-9).all())
    assert bool((t.db_x(z, x) > -31).all())  # uniform in the cube: the largest coordinate is near the radius


def test_parse_threat_and_errors():
    (t,) = parse_threat("db:-30", bounds=(-1, 1))
    assert isinstance(t, Decibels) and t.db == pytest.approx(-30)
    assert [round(u.db) for u in parse_threat("db:-20,-40", bounds=(-1, 1))] == [-20, -40]
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="db"):
            Decibels(bad)
    with pytest.raises(TypeError, match="db"):
        Decibels("-30")  # type: ignore[arg-type]


def test_pgd_on_decibels_stays_inside(linear_model):
    torch.manual_seed(0)
    x = _clips(5, n=8, t=20) * 0.9
    y = linear_model(x).argmax(1)
    threat = Decibels(-10)
    res = PGD(threat, steps=20)(linear_model, x, y)
    assert bool((db_x(res.x_adv, x)[res.distance > 0] <= -10 + 1e-9).all())
    assert bool((res.distance <= threat.eps * (1 + 1e-6)).all())
    # a larger ball never fools fewer clips than a smaller one on a linear model (PGD is exact there)
    loud = PGD(Decibels(0), steps=20)(linear_model, x, y)
    assert int(loud.success.sum()) >= int(res.success.sum())
