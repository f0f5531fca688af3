"""Targeted CTC attack (C&W stage, psychoacoustic stage, EOT), the masking threshold, universal
perturbations and the band-pass playback transform, on tiny models with known behaviour."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advx.audio.ctc import greedy_decode
from advx.audio.ctc_attack import TargetedCTC, to_pcm16, transcription_survival
from advx.audio.psycho import ath_db, energy_above_threshold, masking_loss, masking_threshold
from advx.audio.transforms import BandPass, over_the_air
from advx.audio.universal import apply_universal, kws_objective, universal_perturbation
from advx.threat import Decibels, db_x


class FrameLinear(nn.Module):
    """A CTC 'recogniser' linear in the waveform: 10 ms frames -> 28 log-probabilities (steerable, fast)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.lin = nn.Linear(160, 28)
        with torch.no_grad():
            self.lin.weight.mul_(30)
            self.lin.bias.zero_()
            self.lin.bias[0] = 3.0

    def forward(self, x):
        return torch.log_softmax(self.lin(x.unfold(-1, 160, 160)), -1)


@pytest.fixture(scope="module")
def clips():
    return torch.randn(3, 3200, generator=torch.Generator().manual_seed(1)) * 0.3


def test_targeted_ctc_hits_the_exact_target_inside_the_bound(clips):
    model = FrameLinear().eval()
    targets = ["ab", "on", "open"]
    res = TargetedCTC(Decibels(-15), steps=80, rel_lr=0.1)(model, clips, targets)
    assert bool(res.success.all())
    assert greedy_decode(model(res.x_adv)) == targets  # success is what the model hears on x_adv
    assert bool((res.db_x <= -15 + 1e-9).all())
    assert bool((db_x(res.x_adv, clips) < -15.5).any())  # the bound shrank after a success
    heard16 = greedy_decode(model(to_pcm16(res.x_adv)))
    assert res.success_16bit.tolist() == [h == t for h, t in zip(heard16, targets)]
    assert bool((res.gradients >= 1).all()) and bool((res.gradients <= 80).all())
    summary = res.summary()
    assert summary["success_rate"] == 1.0 and summary["median_db_x"] <= -15


def test_psychoacoustic_stage_never_raises_the_masking_loss_and_keeps_success(clips):
    model = FrameLinear().eval()
    targets = ["ab", "on", "no"]
    plain = TargetedCTC(Decibels(-15), steps=60, rel_lr=0.1)(model, clips, targets)
    psycho = TargetedCTC(Decibels(-15), steps=60, rel_lr=0.1, psycho_steps=40)(model, clips, targets)
    masking = masking_threshold(clips)
    before = masking_loss(plain.x_adv - clips, masking)
    after = masking_loss(psycho.x_adv - clips, masking)
    assert bool(plain.success.all()) and bool(psycho.success.all())
    assert bool((after <= before + 1e-6).all()) and bool((after < before).any())
    assert bool((psycho.db_x <= -15 + 1e-9).all())  # stage 2 stays in the dB ball
    assert bool((psycho.gradients > plain.gradients).all())


def test_eot_attack_counts_every_draw_and_survival_is_a_fraction(clips):
    model = FrameLinear().eval()
    tr = over_the_air()
    res = TargetedCTC(Decibels(-10), steps=20, rel_lr=0.1, transform=tr, eot=2)(model, clips[:2], "ab")
    assert res.gradients.tolist() == [40, 40]  # no early stop under EOT: 20 steps x 2 draws
    surv = transcription_survival(model, res.x_adv, ["ab", "ab"], tr, draws=4)
    assert surv.shape == (2,) and bool(((surv >= 0) & (surv <= 1)).all())
    with pytest.raises(ValueError, match="transform"):
        TargetedCTC(Decibels(-10), eot=2)


def test_masking_threshold_of_a_tone():
    sr, t = 16000, torch.arange(8000) / 16000
    tone = (0.5 * torch.sin(2 * math.pi * 1000 * t))[None]
    m = masking_threshold(tone)
    theta = m.theta[0, 10]  # a frame inside the tone
    freqs = torch.linspace(0, sr / 2, 257)
    assert bool((theta >= ath_db(freqs).float() - 1e-3).all())  # never below the threshold in quiet
    k1000 = int(torch.argmin((freqs - 1000).abs()))
    assert int(theta[100:].argmax()) < 10 and float(theta[k1000]) > float(theta[200]) + 30  # highest near the tone
    quiet = 10 ** ((theta[k1000] - 10 - m.offset[0]) / 20)  # a 1 kHz tone 10 dB under the threshold: masked
    assert float(energy_above_threshold((quiet * torch.sin(2 * math.pi * 1000 * t))[None] * 2, m)[0]) < 0.05
    far = 0.05 * torch.sin(2 * math.pi * 6000 * t)[None]  # far from the masker, 20 dB under it: audible
    assert float(energy_above_threshold(far, m)[0]) > 0.9


def test_universal_perturbation_fools_held_out_inputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 3)).eval()
    x = torch.randn(96, 64, generator=torch.Generator().manual_seed(2)) * 0.3
    with torch.no_grad():
        y = model(x).argmax(1)
    train, test = slice(0, 64), slice(64, 96)
    res = universal_perturbation(model, x[train], kws_objective(y[train], target=2), db=-6, steps=60, batch=16)
    assert float(res.delta.abs().max()) <= 10 ** (-6 / 20) + 1e-7 and res.dbfs <= -6 + 1e-6
    with torch.no_grad():
        hit = model(apply_universal(res.delta, x[test])).argmax(1) == 2
        base = model(x[test]).argmax(1) == 2
    assert float(hit.double().mean()) > max(0.9, float(base.double().mean()) + 0.3)
    assert res.history and res.history[-1]["step"] == 60
    assert apply_universal(res.delta, x[:2, :10]).shape == (2, 10)


def test_band_pass_keeps_the_band_and_removes_the_rest():
    t = torch.arange(16000) / 16000
    x = torch.stack([torch.sin(2 * math.pi * f * t) for f in (40.0, 1000.0, 7800.0)])
    y = BandPass((100, 200), (3500, 4000))(x, torch.Generator().manual_seed(0))
    peak = y.abs().amax(1)
    assert float(peak[1]) == pytest.approx(1.0, abs=1e-3) and float(peak[0]) < 1e-3 and float(peak[2]) < 2e-2
    with pytest.raises(ValueError):
        BandPass((500, 600), (300, 400))


def test_psychoacoustic_result_carries_the_cw_stage(clips):
    model = FrameLinear().eval()
    res = TargetedCTC(Decibels(-15), steps=40, rel_lr=0.1, psycho_steps=10)(model, clips[:2], "on")
    assert res.stage1 is not None and res.stage1.stage1 is None
    assert bool((res.gradients >= res.stage1.gradients).all())
    plain = TargetedCTC(Decibels(-15), steps=40, rel_lr=0.1)(model, clips[:2], "on")
    assert torch.equal(plain.x_adv, res.stage1.x_adv) and plain.stage1 is None  # stage 1 is the plain attack
