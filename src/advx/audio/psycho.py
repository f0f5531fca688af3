"""A psychoacoustic masking threshold per frame, computed from the clip itself.

Qin, Carlini, Cottrell, Goodfellow & Raffel, "Imperceptible, Robust, and Targeted
Adversarial Examples for Automatic Speech Recognition", ICML 2019
(https://arxiv.org/abs/1903.10346), section 3, after the psychoacoustic model 1
of MPEG-1 (ISO/IEC 11172-3): a perturbation is inaudible where, frame by frame
and frequency by frequency, its power stays below what the clip masks.

For a clip x (Hann-windowed STFT s_x, window N):

1. PSD in dB, p_x(k) = 10 log10 |s_x(k) / N|^2, shifted so that the loudest cell of
   the clip is at 96 dB (a 16-bit signal's range): p̄_x = 96 - max p_x + p_x. The same
   shift is applied to the perturbation's PSD p̄_δ, so the two compare.
2. Maskers: per frame, local maxima of p̄_x above the absolute threshold of hearing
   ATH(f) = 3.64 f^-0.8 - 6.5 exp(-0.6 (f - 3.3)^2) + 10^-3 f^4 (f in kHz; Terhardt
   1979); of two maskers closer than 0.5 Bark only the louder is kept; each masker's
   power is its bin and its two neighbours summed.
3. Each masker j at Bark z_j spreads to bin i (Bark z_i, Δz = z_i - z_j) as
   T_ij = P_j - 0.275 z_j + SF(Δz) - 6.025 dB, with the two-slope spreading
   function SF = 27 Δz below the masker and (-27 + 0.37 max(P_j - 40, 0)) Δz above.
   Bark: z(f) = 13 arctan(0.00076 f) + 3.5 arctan((f / 7500)^2) (Zwicker).
4. The global threshold θ_x(i) = 10 log10(10^(ATH_i/10) + Σ_j 10^(T_ij/10)).

The second-stage loss of Qin et al. is the mean over frames and bins of
max(p̄_δ - θ_x, 0) (:func:`masking_loss`, differentiable in δ);
:func:`energy_above_threshold` reports the fraction of the perturbation's energy
in the cells where it is above θ_x (0: all of it masked).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["bark", "ath_db", "Masking", "masking_threshold", "perturbation_psd", "masking_loss",
           "energy_above_threshold"]

N_FFT, HOP = 512, 256  # 32 ms windows at 16 kHz, half overlapping


def bark(f: Tensor) -> Tensor:
    """Zwicker's critical-band rate of frequencies f (Hz)."""
    return 13 * torch.atan(0.00076 * f) + 3.5 * torch.atan((f / 7500) ** 2)


def ath_db(f: Tensor) -> Tensor:
    """Absolute threshold of hearing (dB SPL) at f Hz (Terhardt 1979); f below 20 Hz taken as 20 Hz."""
    k = f.clamp_min(20.0) / 1000
    return 3.64 * k ** -0.8 - 6.5 * torch.exp(-0.6 * (k - 3.3) ** 2) + 1e-3 * k ** 4


def _psd_db(wave: Tensor, n_fft: int, hop: int) -> Tensor:
    """10 log10 |STFT / N|^2, shape (N, frames, bins)."""
    window = torch.hann_window(n_fft, periodic=True, dtype=wave.dtype, device=wave.device)
    s = torch.stft(wave, n_fft, hop, n_fft, window, center=True, pad_mode="constant", return_complex=True)
    power = (s.real.pow(2) + s.imag.pow(2)) / n_fft**2
    return 10 * torch.log10(power.transpose(1, 2) + 1e-20)


def _global_threshold(clip: Tensor, z: Tensor, ath: Tensor, near: Tensor, dz: Tensor) -> Tensor:
    """θ (frames, K) from the normalised PSD (frames, K) of a few frames."""
    mid = clip[:, 1:-1]
    peak = torch.zeros_like(clip, dtype=torch.bool)
    peak[:, 1:-1] = (mid > clip[:, :-2]) & (mid >= clip[:, 2:]) & (mid > ath[1:-1])
    lin = 10 ** (clip / 10)
    power = torch.full_like(clip, -math.inf)
    power[:, 1:-1] = 10 * torch.log10(lin[:, :-2] + lin[:, 1:-1] + lin[:, 2:])
    power = torch.where(peak, power, torch.full_like(power, -math.inf))
    louder = (power[:, None, :] > power[:, :, None]) & near[None]  # a louder masker j near masker i
    power = torch.where(louder.any(-1), torch.full_like(power, -math.inf), power)
    pj = power[:, None, :]  # (F, 1, K)
    sf = torch.where(dz[None] < 0, 27 * dz[None], (-27 + 0.37 * (pj - 40).clamp_min(0)) * dz[None])
    masked = 10 ** ((pj - 0.275 * z[None, None, :] + sf - 6.025) / 10)  # maskers at -inf give 0
    return 10 * torch.log10(10 ** (ath[None] / 10) + masked.sum(-1))


class Masking:
    """The masking threshold of a batch of clips: ``theta`` (N, frames, bins) in dB and the PSD shift."""

    def __init__(self, theta: Tensor, offset: Tensor, n_fft: int = N_FFT, hop: int = HOP):
        self.theta, self.offset, self.n_fft, self.hop = theta, offset, n_fft, hop

    def psd(self, delta: Tensor) -> Tensor:
        return perturbation_psd(delta, self)

    def loss(self, delta: Tensor) -> Tensor:
        return masking_loss(delta, self)

    def above(self, delta: Tensor) -> Tensor:
        return energy_above_threshold(delta, self)


@torch.no_grad()
def masking_threshold(x: Tensor, sample_rate: int = 16000, n_fft: int = N_FFT, hop: int = HOP) -> Masking:
    """The global masking threshold θ_x per frame and bin (see the module docstring), for x (N, T)."""
    x = x.double()
    p = _psd_db(x, n_fft, hop)  # (N, F, K)
    offset = 96.0 - p.amax(dim=(1, 2))
    p = p + offset[:, None, None]
    p = p.float()  # dB values: float32 is ample, and twice as fast for the (frames, K, K) spreading
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64, device=x.device)
    z, ath = bark(freqs).float(), ath_db(freqs).float()
    near = (z[:, None] - z[None, :]).abs() < 0.5  # (K, K): maskers closer than 0.5 Bark
    dz = z[:, None] - z[None, :]  # (i, j): maskee i, masker j
    thetas = [torch.cat([_global_threshold(frames, z, ath, near, dz) for frames in clip.split(32)])
              for clip in p]  # a few frames at a time keep the (frames, K, K) spreading tensor small
    return Masking(torch.stack(thetas).float(), offset.float(), n_fft, hop)


def perturbation_psd(delta: Tensor, masking: Masking) -> Tensor:
    """p̄_δ: the perturbation's PSD in dB with the clip's shift, (N, frames, bins); differentiable."""
    return _psd_db(delta, masking.n_fft, masking.hop) + masking.offset.to(delta)[:, None, None]


def masking_loss(delta: Tensor, masking: Masking) -> Tensor:
    """Per clip, the mean over frames and bins of max(p̄_δ - θ_x, 0) (Qin et al. 2019), shape (N,)."""
    over = (perturbation_psd(delta, masking) - masking.theta.to(delta)).clamp_min(0)
    return over.mean(dim=(1, 2))


@torch.no_grad()
def energy_above_threshold(delta: Tensor, masking: Masking) -> Tensor:
    """Per clip, the fraction of the perturbation's STFT energy in cells above the threshold, (N,)."""
    p = perturbation_psd(delta.double(), masking).double()
    lin = 10 ** (p / 10)
    above = p > masking.theta.double()
    total = lin.sum(dim=(1, 2))
    return torch.where(total > 0, (lin * above).sum(dim=(1, 2)) / total.clamp_min(1e-300), torch.zeros_like(total))
