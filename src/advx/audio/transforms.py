"""Random, differentiable playback transforms for waveforms (N, T): gain, time shift,
added noise and a simple room response.

They model what happens between a loudspeaker and a microphone, for
Expectation over Transformation (see :mod:`advx.audio.eot`) and for training
augmentation. Each transform draws per-sample parameters from a
``torch.Generator`` (deterministic under a seeded one) and is differentiable in
its input, so gradients flow through it to the adversarial perturbation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["Transform", "RandomGain", "RandomShift", "AddNoise", "RoomResponse", "BandPass", "Compose", "playback",
           "over_the_air"]


def _uniform(n: int, low: float, high: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    dev = generator.device if generator is not None else like.device
    u = torch.rand(n, generator=generator, device=dev, dtype=torch.float64).to(like.device)
    return (low + (high - low) * u).to(like.dtype)


def _range(name: str, value: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"{name} must be a finite range (low, high) with low <= high, got {value!r}")
    return low, high


class Transform(nn.Module):
    """A random transform ``t(x, generator)`` of a batch of waveforms (N, T)."""

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class RandomGain(Transform):
    """Multiply each clip by 10**(g/20), g uniform in ``db`` (a louder or quieter playback)."""

    def __init__(self, db: tuple[float, float] = (-6.0, 6.0)):
        super().__init__()
        self.db = _range("db", db)

    def forward(self, x, generator=None):
        g = _uniform(x.shape[0], *self.db, x, generator)
        return x * (10 ** (g / 20)).reshape(-1, *([1] * (x.dim() - 1)))


class RandomShift(Transform):
    """Delay or advance each clip by up to ``max_shift`` samples, filling with zeros."""

    def __init__(self, max_shift: int = 1600):
        super().__init__()
        if int(max_shift) < 0:
            raise ValueError(f"max_shift must be >= 0 samples, got {max_shift!r}")
        self.max_shift = int(max_shift)

    def forward(self, x, generator=None):
        if self.max_shift == 0:
            return x
        n, t = x.shape[0], x.shape[-1]
        s = torch.floor(_uniform(n, -self.max_shift, self.max_shift + 1, x, generator).double()).long()
        s = s.clamp(-self.max_shift, self.max_shift)
        src = torch.arange(t, device=x.device)[None, :] - s[:, None]  # out[t] = x[t - s]
        valid = (src >= 0) & (src < t)
        flat = x.reshape(n, -1, t)
        idx = src.clamp(0, t - 1)[:, None, :].expand_as(flat)
        out = flat.gather(-1, idx) * valid[:, None, :].to(x.dtype)
        return out.reshape(x.shape)


class AddNoise(Transform):
    """Add white Gaussian noise at a signal-to-noise ratio uniform in ``snr_db``.

    The noise level follows each clip's power but is not differentiated through
    (the gradient of the transform with respect to x is the identity).
    """

    def __init__(self, snr_db: tuple[float, float] = (20.0, 40.0)):
        super().__init__()
        self.snr_db = _range("snr_db", snr_db)

    def forward(self, x, generator=None):
        n = x.shape[0]
        power = x.detach().reshape(n, -1).pow(2).mean(1)
        snr = _uniform(n, *self.snr_db, x, generator)
        sigma = (power / 10 ** (snr / 10)).sqrt().reshape(-1, *([1] * (x.dim() - 1)))
        dev = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)
        return x + sigma * noise


class RoomResponse(Transform):
    """Convolve with a synthetic room impulse response: a direct path followed, after a
    short delay, by exponentially decaying Gaussian noise whose energy falls by 60 dB
    in rt60 seconds (uniform in ``rt60``), at a direct-to-reverberant ratio uniform in
    ``drr_db`` (a statistical model of late reverberation, Schroeder 1962). The output
    is rescaled (without gradient through the scale) to the input's peak.
    """

    def __init__(self, rt60: tuple[float, float] = (0.1, 0.5), drr_db: tuple[float, float] = (0.0, 10.0),
                 sample_rate: int = 16000, max_length_s: float = 0.4):
        super().__init__()
        self.rt60, self.drr_db = _range("rt60", rt60), _range("drr_db", drr_db)
        if self.rt60[0] <= 0:
            raise ValueError(f"rt60 must be > 0 seconds, got {rt60!r}")
        self.sample_rate = int(sample_rate)
        self.length = max(2, int(max_length_s * sample_rate))

    def impulse_responses(self, n: int, like: Tensor, generator=None) -> Tensor:
        """(n, length) impulse responses with a unit direct path at t = 0."""
        t = torch.arange(self.length, device=like.device, dtype=like.dtype) / self.sample_rate
        rt60 = _uniform(n, *self.rt60, like, generator)[:, None]
        drr = _uniform(n, *self.drr_db, like, generator)[:, None]
        dev = generator.device if generator is not None else like.device
        tail = torch.randn((n, self.length), generator=generator, device=dev, dtype=like.dtype).to(like.device)
        tail = tail * torch.exp(-6.9078 * t[None] / rt60) * (t[None] >= 2e-3)  # 60 dB = e^6.9078
        energy = tail.pow(2).sum(1, keepdim=True).clamp_min(1e-12)
        tail = tail * (10 ** (-drr / 10) / energy).sqrt()
        tail[:, 0] = 1.0
        return tail

    def forward(self, x, generator=None):
        n, t = x.shape[0], x.shape[-1]
        h = self.impulse_responses(n, x, generator)
        size = 1 << (t + self.length - 1).bit_length()
        flat = x.reshape(n, -1, t)
        y = torch.fft.irfft(torch.fft.rfft(flat, size) * torch.fft.rfft(h, size)[:, None, :], size)[..., :t]
        scale = flat.detach().abs().amax(-1, keepdim=True) / y.detach().abs().amax(-1, keepdim=True).clamp_min(1e-12)
        return (y * scale).reshape(x.shape)


class BandPass(Transform):
    """A loudspeaker's and microphone's band: keep frequencies between a low cut-off uniform in
    ``low_hz`` and a high one uniform in ``high_hz``, with raised-cosine edges an octave wide
    (zero-phase, applied in the frequency domain; linear, so gradients pass through).
    """

    def __init__(self, low_hz: tuple[float, float] = (100.0, 400.0), high_hz: tuple[float, float] = (3500.0, 7500.0),
                 sample_rate: int = 16000):
        super().__init__()
        self.low_hz, self.high_hz = _range("low_hz", low_hz), _range("high_hz", high_hz)
        if self.low_hz[0] < 0 or self.high_hz[1] > sample_rate / 2 or self.low_hz[1] >= self.high_hz[0]:
            raise ValueError(f"need 0 <= low_hz < high_hz <= sample_rate / 2, got {low_hz!r}, {high_hz!r}")
        self.sample_rate = int(sample_rate)

    def response(self, n: int, t: int, like: Tensor, generator=None) -> Tensor:
        """(n, t // 2 + 1) magnitude responses, one per clip."""
        f = torch.fft.rfftfreq(t, 1 / self.sample_rate).to(device=like.device, dtype=like.dtype)[None]
        lo = _uniform(n, *self.low_hz, like, generator)[:, None]
        hi = _uniform(n, *self.high_hz, like, generator)[:, None]
        octs = torch.log2(f.clamp_min(1.0))
        rise = ((octs - torch.log2(lo)) + 0.5).clamp(0, 1)  # 0 an half-octave below lo, 1 above
        fall = ((torch.log2(hi) - octs) + 0.5).clamp(0, 1)
        return (0.5 - 0.5 * torch.cos(math.pi * rise)) * (0.5 - 0.5 * torch.cos(math.pi * fall))

    def forward(self, x, generator=None):
        n, t = x.shape[0], x.shape[-1]
        h = self.response(n, t, x, generator)
        flat = x.reshape(n, -1, t)
        return torch.fft.irfft(torch.fft.rfft(flat) * h[:, None, :], t).reshape(x.shape)


class Compose(Transform):
    """Apply transforms in order."""

    def __init__(self, *transforms: Transform):
        super().__init__()
        for i, tr in enumerate(transforms):
            if not isinstance(tr, Transform):
                raise TypeError(f"transform {i} must be an advx.audio.transforms.Transform, got {type(tr).__name__}")
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x, generator=None):
        for tr in self.transforms:
            x = tr(x, generator)
        return x


def playback(sample_rate: int = 16000, gain_db=(-6.0, 6.0), max_shift_s: float = 0.05, rt60=(0.1, 0.5),
             snr_db=(20.0, 40.0)) -> Compose:
    """Over-the-air playback: room response, gain, time shift, then microphone noise."""
    return Compose(RoomResponse(rt60, sample_rate=sample_rate), RandomGain(gain_db),
                   RandomShift(int(max_shift_s * sample_rate)), AddNoise(snr_db))




def over_the_air(sample_rate: int = 16000, gain_db=(-6.0, 6.0), rt60=(0.1, 0.4), low_hz=(100.0, 400.0),
                 high_hz=(3500.0, 7500.0), snr_db=(20.0, 40.0)) -> Compose:
    """Loudspeaker to microphone: room response, the devices' band-pass, gain, then microphone noise
    (no time shift: a recogniser hears the whole utterance wherever it starts)."""
    return Compose(RoomResponse(rt60, sample_rate=sample_rate), BandPass(low_hz, high_hz, sample_rate),
                   RandomGain(gain_db), AddNoise(snr_db))
