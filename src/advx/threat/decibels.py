"""The decibel threat for audio: an L-infinity ball relative to each signal's peak.

Carlini & Wagner, "Audio Adversarial Examples: Targeted Attacks on
Speech-to-Text", 2018 (https://arxiv.org/abs/1801.01944), measure a perturbation
delta against the signal x it is added to by

    dB(v) = max_i 20 * log10(|v_i|)        dB_x(delta) = dB(delta) - dB(x),

so ``Decibels(-30)`` lets every sample move by at most 10**(-30/20) ~ 3.2% of the
clip's peak amplitude. The ball is an ``Linf`` ball with a per-sample radius,
so PGD, APGD and every other ``Linf`` attack run on it unchanged.

Conventions (so that generic code comparing ``distance`` with ``eps`` stays right):

* ``eps`` is the linear ratio 10**(db/20); ``db`` is the bound in decibels;
* ``distance(x_adv, x)`` is the ratio max|delta| / max|x| (compare it with ``eps``);
* ``db_x(x_adv, x)`` is dB_x in decibels (-inf where nothing changed).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from advx.threat.norms import BoundLike, Linf, _flat, _num, per_sample

__all__ = ["Decibels", "db_x", "snr_db"]


def _peak(x: Tensor) -> Tensor:
    return _flat(x).abs().amax(dim=1)


def db_x(x_adv: Tensor, x: Tensor) -> Tensor:
    """Loudness of the perturbation relative to the signal, in dB (Carlini & Wagner 2018), shape (N,)."""
    d = _flat(x_adv.double() - x.double()).abs().amax(dim=1)
    return 20 * torch.log10(d) - 20 * torch.log10(_peak(x.double()))


def snr_db(x_adv: Tensor, x: Tensor) -> Tensor:
    """Signal-to-noise ratio 10 log10(sum x^2 / sum delta^2) in dB, shape (N,)."""
    num = _flat(x.double()).pow(2).sum(1)
    den = _flat(x_adv.double() - x.double()).pow(2).sum(1)
    return 10 * torch.log10(num) - 10 * torch.log10(den)


class Decibels(Linf):
    """Perturbations at most ``db`` decibels relative to the clip's peak (dB_x <= db).

    Args:
        db: the bound on dB_x(delta), a finite number; -30 is a common choice
            (C&W 2018 report about -31 dB on DeepSpeech). Positive values
            are allowed (a perturbation louder than the clip).
        bounds: the valid waveform range, default (-1, 1).
    """

    norm_name = "db"
    default_bounds = (-1.0, 1.0)

    def __init__(self, db: float, bounds: tuple[BoundLike, BoundLike] = (-1.0, 1.0)):
        super().__init__(self._ratio(db), bounds)
        self._db = float(db)  # kept exactly, so that str() and parse_threat round-trip

    @staticmethod
    def _ratio(db) -> float:
        if isinstance(db, bool) or not isinstance(db, (int, float)):
            raise TypeError(f"db must be a number of decibels (e.g. -30), got {type(db).__name__}")
        if not math.isfinite(db):
            raise ValueError(f"db must be a finite number of decibels (e.g. -30), got {db!r}")
        return 10.0 ** (float(db) / 20.0)

    @property
    def db(self) -> float:
        """The bound in decibels, 20 log10(eps)."""
        if self._ratio(self._db) == self.eps:
            return self._db
        return 20.0 * math.log10(self.eps) if self.eps > 0 else -math.inf

    def _radius_text(self) -> str:
        return _num(self.db)

    def unbounded(self, x: Tensor) -> Decibels:
        """A dB bound whose ball covers the whole waveform range for every clip of ``x`` that is not silent.

        (A silent clip has no ball relative to its peak: its radius stays 0.)
        """
        peaks = _peak(x.double())
        loud = peaks[peaks > 0]
        peak = float(loud.min()) if loud.numel() else 1.0
        return self.with_eps(float(self._widths(x).max()) / peak)

    def _large_eps(self, widths: Tensor, x: Tensor) -> str | None:
        peaks = _peak(x.double())
        if not bool((peaks > 0).any()):  # no data: the loudest clip the bounds allow
            peaks = torch.full_like(peaks, float(torch.maximum(self._lo.abs().max(), self._hi.abs().max())))
        half = 0.5 * float(widths.max())
        loud = peaks[peaks > 0]
        if not bool((self.eps * loud >= half).all()):
            return None
        hint = f"did you mean db:-{_num(abs(self.db))}?" if self.db > 0 else "every clip can be drowned out"
        return (f"{self} on waveforms in {self._range_text()}: {_num(self.db)} dB relative to each clip's peak lets "
                f"every sample move by at least half the range; {hint}")

    def with_db(self, db: float) -> Decibels:
        """The same threat with another bound in decibels."""
        clone = self.with_eps(self._ratio(db))
        clone._db = float(db)
        return clone

    def radius(self, x: Tensor) -> Tensor:
        """max |x_i| * 10**(db/20) per sample: the Linf radius of the ball."""
        return _peak(x) * self.eps

    def distance(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """max|delta| / max|x| per sample (0 for a silent clip left unchanged)."""
        d = _flat(x_adv - x).abs().amax(dim=1)
        return d / _peak(x).clamp_min(torch.finfo(x.dtype).tiny)

    def db_x(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """dB_x(x_adv - x) in decibels, shape (N,)."""
        return db_x(x_adv, x)

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return self.project_ratio(x_adv, x, self.eps)

    def project_ratio(self, x_adv: Tensor, x: Tensor, ratio: Tensor | float) -> Tensor:
        """Projection onto the box and a per-sample ball of radius ratio_n * max|x_n|.

        Exact: every returned |x_adv - x|, measured in float64, is <= ratio * peak. The
        clamp is done in float64 and rounded to x's dtype; coordinates that rounding put
        outside are moved back towards x one ulp at a time (rarely more than one).
        """
        ratio = torch.as_tensor(ratio, dtype=torch.float64, device=x.device).reshape(-1).expand(x.shape[0])
        x64 = x.double()
        r64 = per_sample(_peak(x64) * ratio, x)
        d64 = torch.maximum(torch.minimum(x_adv.double() - x64, r64), -r64)
        z = self.clip((x64 + d64).to(x.dtype))
        z = torch.where((x_adv.double() - x64).abs() <= r64, self.clip(x_adv.to(x.dtype)), z)  # inside: unchanged
        for attempt in range(4):
            for _ in range(4):
                over = (z.double() - x64).abs() > r64
                if not bool(over.any()):
                    return z
                z = torch.where(over, torch.nextafter(z, x), z)
            # |z| much smaller than |x|: the grid near z is finer than the rounding of z - x
            d64 = torch.where(over, d64 * (1 - 1e-6 * 10**attempt), d64)
            z = torch.where(over, self.clip((x64 + d64).to(x.dtype)), z)
        return torch.where((z.double() - x64).abs() > r64, x, z)  # last resort: leave those coordinates at x

    def __repr__(self) -> str:
        lo, hi = self.bounds
        b = f"({lo.item():g}, {hi.item():g})" if lo.dim() == 0 and hi.dim() == 0 else "per-channel"
        return f"Decibels({self.db:g}, bounds={b})"
