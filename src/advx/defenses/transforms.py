"""Input-transformation defenses, as modules ``x -> x'`` and the wrapper :class:`Defended` = model(t(x)).

* :class:`BitDepth` and :class:`MedianFilter` -- feature squeezing: Xu, Evans &
  Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep Neural
  Networks", NDSS 2018 (https://arxiv.org/abs/1704.01155).
* :class:`JPEG` -- JPEG compression as a defense (Dziugaite, Ghahramani & Roy
  2016, https://arxiv.org/abs/1608.00853; Guo et al. 2018), written on torch: 8x8
  block DCT, the IJG quantisation tables scaled by ``quality``, rounding,
  inverse DCT (YCbCr for 3 channels, no chroma subsampling).
* :class:`GaussianNoise` -- a randomised defense: x + N(0, sigma^2 I), clipped to the bounds.

Rounding makes :class:`BitDepth` and :class:`JPEG` piecewise constant, so their
input gradient is zero almost everywhere: they look robust to gradient attacks
only because gradients are masked. Attack them with :mod:`advx.defenses.bpda`
(``differentiable = False`` marks them; ``approximation()`` is the smooth
stand-in BPDA differentiates) and :class:`GaussianNoise` with
:class:`advx.defenses.eot.EOT` (Athalye, Carlini & Wagner 2018).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["InputTransform", "BitDepth", "MedianFilter", "JPEG", "GaussianNoise", "Defended", "soft_round",
           "TRANSFORMS", "parse_transforms"]


class InputTransform(nn.Module):
    """A map from inputs in ``bounds`` to inputs in ``bounds``."""

    #: False when the input gradient is zero or undefined almost everywhere (needs BPDA)
    differentiable: bool = True

    def __init__(self, bounds: tuple[float, float] = (0.0, 1.0)):
        super().__init__()
        lo, hi = float(bounds[0]), float(bounds[1])
        if not lo < hi:
            raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}")
        self.bounds = (lo, hi)

    def approximation(self) -> nn.Module | None:
        """A differentiable stand-in for BPDA (None: the identity)."""
        return None


def soft_round(x: Tensor) -> Tensor:
    """round(x) + (x - round(x))^3: equal to rounding at integers, non-zero derivative (Shin & Song 2017)."""
    r = torch.round(x)
    return r + (x - r) ** 3


class BitDepth(InputTransform):
    """Keep ``bits`` bits per value: 2**bits evenly spaced levels across the bounds (Xu et al. 2018)."""

    differentiable = False

    def __init__(self, bits: int, bounds: tuple[float, float] = (0.0, 1.0)):
        super().__init__(bounds)
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"bits must be an int in [1, 16] (Xu et al. use 1 for MNIST), got {bits!r}")
        self.bits = bits

    def forward(self, x: Tensor) -> Tensor:
        lo, hi = self.bounds
        levels = 2 ** self.bits - 1
        return lo + torch.round((x - lo) / (hi - lo) * levels) / levels * (hi - lo)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class MedianFilter(InputTransform):
    """Median over each ``size`` x ``size`` window of every channel (Xu et al. 2018).

    The same values as ``scipy.ndimage.median_filter(x, size, mode="mirror")``
    (Xu et al.'s implementation): even sizes take the upper median and reach one
    pixel further up/left. Differentiable almost everywhere (the gradient goes
    to the median pixel of each window).
    """

    def __init__(self, size: int = 2, bounds: tuple[float, float] = (0.0, 1.0)):
        super().__init__(bounds)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be an int >= 1 (Xu et al. use 2 or 3), got {size!r}")
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"MedianFilter works on images (N, C, H, W), got shape {tuple(x.shape)}")
        k = self.size
        before, after = k // 2, (k - 1) // 2
        padded = F.pad(x, (before, after, before, after), mode="reflect" if min(x.shape[-2:]) > before else "replicate")
        n, c, h, w = x.shape
        windows = padded.unfold(2, k, 1).unfold(3, k, 1).reshape(n, c, h, w, k * k)
        return windows.sort(dim=-1).values[..., (k * k) // 2]

    def extra_repr(self) -> str:
        return f"size={self.size}"


# IJG (libjpeg) base tables, quality 50, in row-major order (ITU-T T.81, Annex K)
_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
         14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
         49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
_CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
           47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32


def _quant_table(base: list[int], quality: int) -> Tensor:
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    table = torch.floor((torch.tensor(base, dtype=torch.float64) * scale + 50) / 100).clamp(1, 255)
    return table.reshape(8, 8)


def _dct_matrix() -> Tensor:
    """Orthonormal 8-point DCT-II: the 2-D transform D B D^T is JPEG's forward DCT."""
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d


class JPEG(InputTransform):
    """JPEG compression at ``quality`` (1-100) and back, on torch; differentiable with ``soft=True``.

    Channels: 1 -> luminance table; 3 -> RGB to YCbCr (JFIF), chroma table for
    Cb and Cr, no subsampling; otherwise each channel on the luminance table.
    Sizes not divisible by 8 are padded by replication and cropped back.
    ``soft=True`` replaces each rounding by :func:`soft_round` (the BPDA approximation).
    """

    differentiable = False

    def __init__(self, quality: int = 75, bounds: tuple[float, float] = (0.0, 1.0), soft: bool = False):
        super().__init__(bounds)
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ValueError(f"quality must be an int in [1, 100], got {quality!r}")
        self.quality, self.soft = quality, bool(soft)
        self.differentiable = self.soft
        self.register_buffer("dct", _dct_matrix().float(), persistent=False)
        tables = torch.stack([_quant_table(_LUMA, quality), _quant_table(_CHROMA, quality)]).float()
        self.register_buffer("tables", tables, persistent=False)

    def approximation(self) -> nn.Module:
        return JPEG(self.quality, self.bounds, soft=True)

    def _round(self, x: Tensor) -> Tensor:
        return soft_round(x) if self.soft else torch.round(x)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"JPEG works on images (N, C, H, W), got shape {tuple(x.shape)}")
        lo, hi = self.bounds
        n, c, h, w = x.shape
        pixels = (x - lo) / (hi - lo) * 255.0
        color = c == 3
        planes = _rgb_to_ycbcr(pixels) if color else pixels
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            planes = F.pad(planes, (0, pw, 0, ph), mode="replicate")
        hh, ww = planes.shape[-2:]
        blocks = (planes - 128.0).reshape(n, c, hh // 8, 8, ww // 8, 8).transpose(3, 4)  # (n, c, bh, bw, 8, 8)
        d = self.dct.to(x.dtype)
        table = self.tables.to(x.dtype)[torch.tensor([0, 1, 1] if color else [0] * c, device=x.device)]
        table = table.reshape(1, c, 1, 1, 8, 8)
        coeffs = d @ blocks @ d.T
        coeffs = self._round(coeffs / table) * table
        blocks = d.T @ coeffs @ d + 128.0
        planes = blocks.transpose(3, 4).reshape(n, c, hh, ww)[..., :h, :w]
        pixels = _ycbcr_to_rgb(planes) if color else planes
        pixels = self._round(pixels.clamp(0.0, 255.0))
        return lo + pixels / 255.0 * (hi - lo)

    def extra_repr(self) -> str:
        return f"quality={self.quality}" + (", soft=True" if self.soft else "")


def _rgb_to_ycbcr(p: Tensor) -> Tensor:
    r, g, b = p[:, 0], p[:, 1], p[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.stack([y, cb, cr], dim=1)


def _ycbcr_to_rgb(p: Tensor) -> Tensor:
    y, cb, cr = p[:, 0], p[:, 1] - 128.0, p[:, 2] - 128.0
    return torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], dim=1)


class GaussianNoise(InputTransform):
    """x + N(0, sigma^2 I), clipped to the bounds: a fresh draw at every call (global RNG or ``generator``)."""

    def __init__(self, sigma: float, bounds: tuple[float, float] = (0.0, 1.0), generator: torch.Generator | None = None):
        super().__init__(bounds)
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        self.sigma, self.generator = float(sigma), generator

    def forward(self, x: Tensor) -> Tensor:
        g = self.generator
        noise = torch.randn(x.shape, generator=g, device=g.device if g is not None else x.device, dtype=x.dtype)
        return (x + self.sigma * noise.to(x.device)).clamp(*self.bounds)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}"


class Defended(nn.Module):
    """``model(transform_k(... transform_1(x)))``: a model behind input transformations."""

    def __init__(self, model: nn.Module, *transforms: nn.Module):
        super().__init__()
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        if not transforms:
            raise ValueError("Defended needs at least one transform, e.g. Defended(model, BitDepth(3))")
        self.transforms = nn.ModuleList(transforms)
        self.model = model
        self.train(model.training if isinstance(model, nn.Module) else False)  # take the model's mode

    def preprocess(self, x: Tensor) -> Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self.preprocess(x))


#: ``--defense`` names -> (transform class, meaning of the number after the colon)
TRANSFORMS = {"bit-depth": (BitDepth, "bits", int), "median": (MedianFilter, "size", int),
              "jpeg": (JPEG, "quality", int), "noise": (GaussianNoise, "sigma", float)}


def parse_transforms(spec: str, bounds: tuple[float, float] = (0.0, 1.0)) -> list[InputTransform]:
    """Transforms from a spec like ``"bit-depth:3"`` or ``"median:2,jpeg:75"`` (applied left to right)."""
    out = []
    for part in (p.strip() for p in str(spec).split(",")):
        name, _, value = part.partition(":")
        if name not in TRANSFORMS or not value:
            known = ", ".join(f"{k}:{v[1].upper()}" for k, v in TRANSFORMS.items())
            raise ValueError(f"defense {part!r}: expected NAME:VALUE with NAME one of {known}, "
                             "e.g. bit-depth:3 or median:2,jpeg:75")
        cls, what, kind = TRANSFORMS[name]
        try:
            number = kind(value)
        except ValueError:
            raise ValueError(f"defense {part!r}: {what} must be {'an integer' if kind is int else 'a number'}, "
                             f"got {value!r}") from None
        out.append(cls(number, bounds=bounds))
    return out
