"""Band-limited resampling by windowed-sinc interpolation (polyphase).

For rates with ratio L/M (in lowest terms), output sample n sits at input time
t = n M / L. It is sum_k x[k] h(t - k) with the low-pass kernel

    h(u) = c sinc(c u) w(u / half_width),   c = rolloff * min(1, L / M),

where w is a Kaiser window (Smith, "Digital Audio Resampling", 2002). Writing
n = j L + p, the outputs of phase p sit at t = j M + p M / L: one strided
convolution per phase, so all L phases are one ``conv1d`` with L output
channels and stride M, interleaved afterwards. Differentiable in x; any
leading batch shape.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["resample"]


@functools.lru_cache(maxsize=16)
def _kernel(up: int, down: int, zero_crossings: int, rolloff: float, beta: float) -> tuple[Tensor, int]:
    """Per-phase taps (up, width) in float64, and the left padding K."""
    c = rolloff * min(1.0, up / down)
    half = zero_crossings / c  # half-width of the kernel in input samples
    k = int(math.ceil(half))
    width = 2 * k + int(math.ceil((up - 1) * down / up)) + 1  # phases span p M / L in [0, M)
    shift = torch.arange(up, dtype=torch.float64) * down / up  # p M / L
    u = shift[:, None] + k - torch.arange(width, dtype=torch.float64)[None, :]  # t - (input index of tap i)
    inside = (1 - (u / half).pow(2)).clamp_min(0)
    win = torch.special.i0(beta * inside.sqrt()) / torch.special.i0(torch.tensor(beta, dtype=torch.float64))
    win = torch.where(u.abs() <= half, win, torch.zeros_like(win))
    return c * torch.sinc(c * u) * win, k


def resample(x: Tensor, orig_sr: int, new_sr: int, zero_crossings: int = 16, rolloff: float = 0.945,
             beta: float = 8.6) -> Tensor:
    """Resample ``x`` (..., T) from ``orig_sr`` to ``new_sr`` Hz; output length ceil(T * new / orig)."""
    if int(orig_sr) <= 0 or int(new_sr) <= 0:
        raise ValueError(f"sample rates must be positive integers, got orig_sr={orig_sr!r}, new_sr={new_sr!r}")
    if not 0 < rolloff <= 1:
        raise ValueError(f"rolloff must be in (0, 1], got {rolloff!r}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    g = math.gcd(int(orig_sr), int(new_sr))
    up, down = int(new_sr) // g, int(orig_sr) // g
    if up == down:
        return x.clone()
    shape, t_in = x.shape[:-1], x.shape[-1]
    kern, k = _kernel(up, down, int(zero_crossings), float(rolloff), float(beta))
    n_out = -(-t_in * up // down)
    frames = -(-n_out // up)
    need = (frames - 1) * down + kern.shape[1]  # padded length the strided convolution reads
    padded = F.pad(x.reshape(-1, 1, t_in), (k, max(0, need - t_in - k)))
    out = F.conv1d(padded, kern.to(dtype=x.dtype, device=x.device)[:, None, :], stride=down)  # (B, up, frames)
    return out.transpose(1, 2).reshape(*shape, -1)[..., :n_out]
