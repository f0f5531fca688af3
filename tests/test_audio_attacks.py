"""Audio attacks: PGD with dB_x bounds on the digit model, C&W minimum-dB against the exact
minimum of a linear model, the genetic black-box attack's budget, EOT and the playback transforms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advx.attacks.pgd import PGD
from advx.audio import (
    EOT,
    AddNoise,
    CarliniWagnerDB,
    Compose,
    Decibels,
    GeneticAttack,
    RandomGain,
    RandomShift,
    RoomResponse,
    db_x,
    load_digits,
    load_model,
    playback,
    success_under,
)


@pytest.fixture(scope="module")
def digits():
    d = load_digits("espeak", "test", limit=10)
    model = load_model("digits-kws")
    with torch.no_grad():
        right = model(d.waves).argmax(1) == d.labels
    x, y = d.waves[right][:6], d.labels[right][:6]
    return model, x, y, (y + 3) % 10


def test_pgd_targeted_at_minus_30_db(digits):
    model, x, y, t = digits
    res = PGD(Decibels(-30), steps=30, loss="margin")(model, x, y, t)
    assert bool(res.success.all())  # the anchor: 100% targeted at dB_x <= -30
    assert bool((db_x(res.x_adv, x) <= -30).all())
    assert torch.equal(model(res.x_adv).argmax(1), t)


def test_cw_finds_quieter_examples_than_its_start(digits):
    model, x, y, t = digits
    res = CarliniWagnerDB(Decibels(-20), steps=40)(model, x[:2], y[:2], t[:2])
    d = db_x(res.x_adv, x[:2])
    assert bool(res.success.all()) and bool((d <= -20).all())
    assert float(d.max()) < -26  # each success shrinks the ball: well below the -20 dB start


class _TwoClass(nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x):
        return x @ self.w.T + self.b


def test_cw_approaches_the_exact_minimum_on_a_linear_model():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2, 64, generator=g, dtype=torch.float64)
    model = _TwoClass(w, torch.zeros(2, dtype=torch.float64))
    x = (torch.rand(8, 64, generator=g, dtype=torch.float64) - 0.5) * 0.6
    y = model(x).argmax(1)
    t = 1 - y
    gap = (model(x).gather(1, y[:, None]) - model(x).gather(1, t[:, None])).squeeze(1)
    exact = gap / (w[0] - w[1]).abs().sum() / x.abs().amax(1)  # minimal max|delta| / peak (box inactive)
    res = CarliniWagnerDB(Decibels(6), steps=60, rel_lr=0.1)(model.eval(), x, y, t)
    ratio = res.distance.double()
    assert bool(res.success.all())
    assert bool((ratio >= exact * (1 - 1e-9)).all())  # nobody beats the exact minimum
    assert bool((ratio <= exact / 0.8).all())  # within one shrink step (about 1.9 dB) of it


def test_genetic_attack_respects_budget_and_uses_no_gradients(linear_model):
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(6, 20, generator=g) * 2 - 1) * 0.5
    y = linear_model(x).argmax(1)
    attack = GeneticAttack(Decibels(0), population=10, max_queries=300)
    res = attack(linear_model, x, y)
    assert int(res.gradients.sum()) == 0
    assert bool((res.queries <= 300 + 2).all())  # + the clean and the final judgement
    assert res.success.double().mean() >= 0.8
    assert bool((db_x(res.x_adv, x) <= 0).all())
    again = attack(linear_model, x, y)
    assert torch.equal(again.x_adv, res.x_adv)  # deterministic under the attack's seed
    done = res.success & (res.queries < 300)  # clips stop costing queries once fooled
    assert bool(done.any())


def test_genetic_targeted_on_linear_model(linear_model):
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(6, 20, generator=g) * 2 - 1) * 0.5
    y = linear_model(x).argmax(1)
    t = (y + 1) % 4
    res = GeneticAttack(Decibels(3), population=12, max_queries=1200)(linear_model, x, y, t)
    assert res.success.double().mean() >= 0.5
    assert torch.equal(linear_model(res.x_adv).argmax(1)[res.success], t[res.success])


def test_transforms_known_answers():
    x = torch.arange(1, 11, dtype=torch.float64)[None].repeat(3, 1)
    assert torch.allclose(RandomGain((6.0, 6.0))(x), x * 10 ** (6 / 20))
    shifted = RandomShift(3)(x, torch.Generator().manual_seed(0))
    for row in shifted:  # a shifted copy of 1..10 with zeros filled in
        nz = row[row != 0]
        assert len(nz) >= 7 and torch.equal(nz, torch.arange(nz[0].item(), nz[0].item() + len(nz), dtype=x.dtype))
    sig = torch.sin(torch.arange(16000, dtype=torch.float64) * 0.1)[None].repeat(4, 1)
    noisy = AddNoise((20.0, 20.0))(sig, torch.Generator().manual_seed(0))
    snr = 10 * torch.log10(sig.pow(2).sum(1) / (noisy - sig).pow(2).sum(1))
    assert torch.allclose(snr, torch.full_like(snr, 20.0), atol=0.3)
    dry = RoomResponse(drr_db=(80.0, 80.0))(sig, torch.Generator().manual_seed(0))
    assert torch.allclose(dry, sig, atol=1e-3)  # negligible reverberation: the direct path only


def test_transforms_pass_gradients():
    x = torch.randn(2, 4000, requires_grad=True)
    playback()(x, torch.Generator().manual_seed(0)).pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(TypeError, match="Transform"):
        Compose(RandomGain(), lambda z: z)  # type: ignore[arg-type]


def test_eot_averages_over_transforms(linear_model):
    x = torch.randn(5, 20)
    eot = EOT(linear_model, 4, transform=RandomGain((-6.0, 6.0)), seed=3)
    g = torch.Generator().manual_seed(3)
    draws = RandomGain((-6.0, 6.0))(x.repeat(4, 1), g).reshape(4, 5, 20)
    expected = torch.stack([linear_model(d) for d in draws]).mean(0)
    assert torch.allclose(eot(x), expected, atol=1e-5)
    assert torch.allclose(eot.reseed()(x), expected, atol=1e-5)
    y = linear_model(x).argmax(1)
    identity = RandomGain((0.0, 0.0))
    assert torch.equal(success_under(linear_model, x, y, transform=identity, draws=3), torch.zeros(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="n must be"):
        EOT(linear_model, 0)
