"""A differentiable log-mel front end on ``torch.stft``, with its own mel filterbank.

The mel scale is the HTK one, m(f) = 2595 log10(1 + f / 700) (O'Shaughnessy
1987). ``n_mels`` triangular filters have their corners at ``n_mels + 2``
points equally spaced in mel between ``f_min`` and ``f_max``; filter i rises
linearly (in Hz) from corner i to i+1 and falls to corner i+2. With
``norm="slaney"`` each triangle is scaled by 2 / (f_{i+2} - f_i) (equal area).

``LogMel`` computes log(mel_filterbank @ |STFT|^2 + floor): a periodic Hann
window of ``win_length`` centred in ``n_fft``, frames every ``hop_length``
samples, the signal zero-padded by n_fft // 2 on both sides (``center=True``).

The floor. An absolute ``floor=1e-6`` (the default, kept for the committed
``digits-kws`` weights) sits 100 dB below a full-scale sine: in the digital
silence of synthetic speech every time-frequency cell is at log(1e-6), and a
perturbation far below anything audible (-70 dB re the clip's peak) lifts those
cells by several nats -- the model sees it as loudly as speech. ``floor_db``
instead puts the floor a fixed number of decibels below a fixed reference, the
mel power of a full-scale sine at a filter's centre, ((sum of the window) / 2)^2
(10^4 for the 400-sample Hann window): ``floor_db=-70`` adds 10^4 * 10^-7 = 10^-3.
The reference does not depend on the clip (a clip-relative floor would hand the
adversary another knob), so quiet cells stay quiet until a perturbation is
about as loud as the floor.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["hz_to_mel", "mel_to_hz", "mel_filterbank", "LogMel"]


def hz_to_mel(f: Tensor | float) -> Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m: Tensor | float) -> Tensor:
    return 700.0 * (10.0 ** (torch.as_tensor(m, dtype=torch.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None,
                   norm: str | None = None) -> Tensor:
    """Triangular HTK-mel filters, shape (n_mels, n_fft // 2 + 1), float64."""
    f_max = sample_rate / 2 if f_max is None else float(f_max)
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}")
    if n_mels < 1:
        raise ValueError(f"n_mels must be >= 1, got {n_mels}")
    if norm not in (None, "slaney"):
        raise ValueError(f"norm must be None or 'slaney', got {norm!r}")
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    corners = mel_to_hz(torch.linspace(hz_to_mel(f_min).item(), hz_to_mel(f_max).item(), n_mels + 2,
                                       dtype=torch.float64))
    lo, mid, hi = corners[:-2, None], corners[1:-1, None], corners[2:, None]
    rise = (freqs[None] - lo) / (mid - lo)
    fall = (hi - freqs[None]) / (hi - mid)
    fb = torch.minimum(rise, fall).clamp_min(0)
    if norm == "slaney":
        fb = fb * (2.0 / (hi - lo))
    return fb


class LogMel(nn.Module):
    """Waveforms (N, T) or (N, 1, T) -> log-mel spectrograms (N, n_mels, frames)."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 512, win_length: int = 400, hop_length: int = 160,
                 n_mels: int = 40, f_min: float = 20.0, f_max: float | None = None, floor: float = 1e-6,
                 norm: str | None = None, floor_db: float | None = None):
        super().__init__()
        if win_length > n_fft:
            raise ValueError(f"win_length ({win_length}) must be <= n_fft ({n_fft})")
        if floor <= 0 or not math.isfinite(floor):
            raise ValueError(f"floor must be a positive number (it keeps log finite), got {floor!r}")
        self.sample_rate, self.n_fft, self.win_length, self.hop_length = sample_rate, n_fft, win_length, hop_length
        window = torch.hann_window(win_length, periodic=True)
        self.floor_db = None if floor_db is None else float(floor_db)
        if self.floor_db is not None:
            if not math.isfinite(self.floor_db):
                raise ValueError(f"floor_db must be a finite number of decibels (e.g. -70), got {floor_db!r}")
            floor = self.reference_power(window) * 10 ** (self.floor_db / 10)
        self.floor = float(floor)
        self.register_buffer("window", window, persistent=False)
        fb = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, norm).float()
        self.register_buffer("filters", fb, persistent=False)

    @staticmethod
    def reference_power(window: Tensor) -> float:
        """Mel power of a full-scale sine at a filter's centre: ((sum of the window) / 2)^2."""
        return float(window.double().sum() / 2) ** 2

    def power(self, wave: Tensor) -> Tensor:
        """|STFT|^2, shape (N, n_fft // 2 + 1, frames)."""
        if wave.dim() == 3 and wave.shape[1] == 1:
            wave = wave[:, 0]
        if wave.dim() != 2:
            raise ValueError(f"wave must have shape (N, T) or (N, 1, T), got {tuple(wave.shape)}")
        spec = torch.stft(wave, self.n_fft, self.hop_length, self.win_length, self.window.to(wave.dtype),
                          center=True, pad_mode="constant", return_complex=True)
        return spec.real.pow(2) + spec.imag.pow(2)

    def mel(self, wave: Tensor) -> Tensor:
        return torch.matmul(self.filters.to(wave.dtype), self.power(wave))

    def forward(self, wave: Tensor) -> Tensor:
        return torch.log(self.mel(wave) + self.floor)

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, win_length={self.win_length}, "
                f"hop_length={self.hop_length}, n_mels={self.filters.shape[0]}, floor={self.floor:g}"
                + (f" ({self.floor_db:g} dB re full scale)" if self.floor_db is not None else ""))
