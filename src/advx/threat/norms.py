"""Threat models: the sets an adversary may move in.

A threat is an eps-ball around the clean input in some norm, intersected with
the box of valid inputs (``bounds``). It owns everything an attack needs to
stay inside that set, so attacks never clamp or project by hand:

* ``project(x_adv, x)`` -- the exact Euclidean projection onto ball ∩ box,
* ``distance(x_adv, x)`` -- per-sample size of the perturbation in its norm,
* ``random_start(x, generator)`` -- a uniform random point of the ball (then boxed),
* ``step(grad, x_adv)`` -- the normalised steepest-ascent direction for the norm,
* ``radius(x)`` -- the per-sample radius (constant here; relative for audio).

Bounds are scalars or tensors broadcastable to one sample (a 1-D tensor of
length C is read as per-channel bounds for dimension 1 of the batch).
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Union

import torch
from torch import Tensor

BoundLike = Union[float, Sequence[float], Tensor]

__all__ = ["Threat", "Linf", "L2", "L1", "L0", "per_sample", "BoundLike"]


def _flat(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1)


def per_sample(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a (N,) tensor to broadcast against a batch ``like``."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


class Threat(ABC):
    """An eps-ball in some norm intersected with the input box ``bounds``."""

    norm_name: str = ""

    def __init__(self, eps: float, bounds: tuple[BoundLike, BoundLike] = (0.0, 1.0)):
        self.eps = self._check_eps(eps)
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise ValueError(f"bounds must be a pair (low, high), got {bounds!r}")
        lo, hi = (torch.as_tensor(b, dtype=torch.float64) for b in bounds)
        if lo.shape != hi.shape and lo.dim() > 0 and hi.dim() > 0:
            raise ValueError(f"bounds: low has shape {tuple(lo.shape)}, high {tuple(hi.shape)}; give equal shapes")
        if bool((lo >= hi).any()):
            raise ValueError(f"bounds: low must be < high everywhere, got {bounds!r}")
        self._lo, self._hi = lo, hi

    # ------------------------------------------------------------------ bounds
    @property
    def bounds(self) -> tuple[Tensor, Tensor]:
        return self._lo, self._hi

    def box(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Low and high bounds shaped to broadcast against batch ``x``."""
        out = []
        for b in (self._lo, self._hi):
            b = b.to(device=x.device, dtype=x.dtype)
            if b.dim() == 1 and x.dim() >= 3 and b.shape[0] == x.shape[1] and b.shape[0] > 1:
                b = b.reshape(1, -1, *([1] * (x.dim() - 2)))  # per-channel, NC... layout
            elif b.dim() > 0:
                b = b.unsqueeze(0)  # shaped like one sample
            out.append(b)
        return out[0], out[1]

    def clip(self, x: Tensor) -> Tensor:
        """Clamp ``x`` into the box of valid inputs."""
        lo, hi = self.box(x)
        return torch.maximum(torch.minimum(x, hi), lo)

    def check(self, x: Tensor, name: str = "x", atol: float = 1e-6) -> None:
        """Raise ValueError if ``x`` lies outside the box."""
        lo, hi = self.box(x)
        if bool(((x < lo - atol) | (x > hi + atol)).any()):
            raise ValueError(
                f"{name} has values outside the threat's bounds "
                f"(min {x.min().item():.4g}, max {x.max().item():.4g}); rescale the data into "
                f"bounds or construct the threat with bounds=(low, high)"
            )

    # ------------------------------------------------------------------ radius
    def radius(self, x: Tensor) -> Tensor:
        """Per-sample radius of the ball around ``x``, shape (N,)."""
        return torch.full((x.shape[0],), self.eps, dtype=x.dtype, device=x.device)

    @staticmethod
    def _check_eps(eps) -> float:
        try:
            value = float(eps)
        except (TypeError, ValueError):
            raise TypeError(f"eps must be a number, got {type(eps).__name__}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        return value

    def with_eps(self, eps: float) -> Threat:
        """The same threat (norm and bounds) with another radius."""
        clone = copy.copy(self)
        clone.eps = self._check_eps(eps)
        return clone

    # ------------------------------------------------------------- norm parts
    @abstractmethod
    def norm(self, delta: Tensor) -> Tensor:
        """Per-sample norm of ``delta`` (N, ...) -> (N,)."""

    def distance(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return self.norm(x_adv - x)

    @abstractmethod
    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Exact Euclidean projection of ``x_adv`` onto ball(x, radius) ∩ box."""

    @abstractmethod
    def _sample_ball(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """A perturbation drawn uniformly from the ball of radius ``radius(x)``."""

    def random_start(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A random point of the ball around ``x``, inside the box."""
        return self.project(x + self._sample_ball(x, generator), x)

    @abstractmethod
    def step(self, grad: Tensor, x_adv: Tensor | None = None) -> Tensor:
        """Steepest-ascent direction of unit size in this norm."""

    def __repr__(self) -> str:
        lo, hi = self._lo, self._hi
        b = f"({lo.item():g}, {hi.item():g})" if lo.dim() == 0 and hi.dim() == 0 else "per-channel"
        return f"{type(self).__name__}({self.eps:g}, bounds={b})"


def _randn(shape, x: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else x.device
    return torch.randn(shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def _rand(shape, x: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else x.device
    return torch.rand(shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


class Linf(Threat):
    """L-infinity ball: every input component moves by at most eps."""

    norm_name = "linf"

    def norm(self, delta: Tensor) -> Tensor:
        return _flat(delta).abs().amax(dim=1)

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        r = per_sample(self.radius(x), x)
        return self.clip(torch.maximum(torch.minimum(x_adv, x + r), x - r))

    def _sample_ball(self, x, generator):
        return (2 * _rand(x.shape, x, generator) - 1) * per_sample(self.radius(x), x)

    def step(self, grad, x_adv=None):
        return grad.sign()


class L2(Threat):
    """Euclidean ball."""

    norm_name = "l2"

    def norm(self, delta: Tensor) -> Tensor:
        return _flat(delta).norm(p=2, dim=1)

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        # z(t) = clip(x + t*d) for t in [0, 1]; ||z(t) - x||^2 is nondecreasing and
        # piecewise quadratic in t, with a breakpoint where each coordinate meets
        # its bound. The projection is z(t*) for the largest t* with norm <= r.
        lo, hi = self.box(x)
        n = x.shape[0]
        d = _flat(x_adv - x)
        xf = _flat(x)
        lo_f = _flat(lo.expand_as(x))
        hi_f = _flat(hi.expand_as(x))
        r2 = self.radius(x).pow(2)
        room = torch.where(d > 0, hi_f - xf, lo_f - xf)  # signed distance to the bound hit
        with torch.no_grad():
            safe_d = torch.where(d == 0, torch.ones_like(d), d)
            tb = torch.where(d == 0, torch.full_like(d, math.inf), room / safe_d).clamp_min(0)
        full = torch.minimum(tb, torch.ones_like(tb))  # coordinate's t at which it saturates (<=1)
        clipped_sq = torch.where(tb <= 1, room.pow(2), d.pow(2))  # contribution at t=1
        inside = clipped_sq.sum(1) <= r2
        t_star = torch.ones(n, dtype=x.dtype, device=x.device)
        if not bool(inside.all()):
            idx = (~inside).nonzero().squeeze(1)
            tbs, order = full[idx].sort(dim=1)
            dd = d[idx].gather(1, order).pow(2)
            cc = room[idx].gather(1, order).pow(2)
            cum_c = cc.cumsum(1)  # clipped contributions of first j+1 breakpoints
            rest_d = dd.sum(1, keepdim=True) - dd.cumsum(1)  # free d^2 after them
            f = cum_c + tbs.pow(2) * rest_d  # ||z(t_j) - x||^2 at each breakpoint
            j = (f < r2[idx].unsqueeze(1)).sum(1, keepdim=True)  # first breakpoint over r^2
            prev_c = torch.where(j > 0, cum_c.gather(1, (j - 1).clamp_min(0)), torch.zeros_like(j, dtype=x.dtype))
            prev_rest = torch.where(j > 0, rest_d.gather(1, (j - 1).clamp_min(0)), dd.sum(1, keepdim=True))
            t = ((r2[idx].unsqueeze(1) - prev_c).clamp_min(0) / prev_rest.clamp_min(1e-30)).sqrt()
            t_star[idx] = t.squeeze(1).clamp(0, 1)
        z = torch.where(per_sample(t_star, x) >= 1, x_adv, x + per_sample(t_star, x) * (x_adv - x))
        return self.clip(z)  # rows inside the ball are only boxed: no rounding through x + (x_adv - x)

    def _sample_ball(self, x, generator):
        g = _randn(x.shape, x, generator)
        g = g / _flat(g).norm(dim=1).clamp_min(1e-12).reshape(-1, *([1] * (x.dim() - 1)))
        dim = _flat(x).shape[1]
        u = _rand((x.shape[0],), x, generator).pow(1.0 / dim)
        return g * per_sample(u * self.radius(x), x)

    def step(self, grad, x_adv=None):
        return grad / per_sample(_flat(grad).norm(dim=1).clamp_min(1e-12), grad)


def _sum_relu(sorted_vals: Tensor, suffix: Tensor, q: Tensor) -> Tensor:
    """sum_j relu(v_j - q) for each query q; ``sorted_vals`` ascending per row,
    ``suffix[:, i]`` = sum of sorted_vals[:, i:] (length D+1)."""
    idx = torch.searchsorted(sorted_vals, q, right=True)
    count = sorted_vals.shape[1] - idx
    return suffix.gather(1, idx) - q * count


class L1(Threat):
    """L1 ball, with the exact projection onto ball ∩ box.

    The projection soft-thresholds |d| by a level lam and clips it to the room
    left by the box: |u_i|(lam) = min(max(|d_i| - lam, 0), b_i). The L1 norm of
    u is piecewise linear and decreasing in lam, so lam is found exactly by
    sorting its 2D breakpoints (Duchi et al. 2008, with the box of Croce & Hein 2021).

    ``step`` uses the top ``sparsity`` fraction of gradient coordinates, as in
    the sparse L1 steepest ascent of Tramer & Boneh (2019) and APGD-L1.
    """

    norm_name = "l1"

    def __init__(self, eps: float, bounds=(0.0, 1.0), sparsity: float = 0.01):
        super().__init__(eps, bounds)
        if not 0 < sparsity <= 1:
            raise ValueError(f"sparsity must be in (0, 1], got {sparsity!r}")
        self.sparsity = float(sparsity)

    def norm(self, delta: Tensor) -> Tensor:
        return _flat(delta).abs().sum(dim=1)

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        lo, hi = self.box(x)
        d = _flat(x_adv - x)
        xf = _flat(x)
        b = torch.where(d >= 0, _flat(hi.expand_as(x)) - xf, xf - _flat(lo.expand_as(x))).clamp_min(0)
        a = d.abs()
        r = self.radius(x)
        boxed = torch.minimum(a, b)
        lam = torch.zeros_like(r)
        over = boxed.sum(1) > r
        if bool(over.any()):
            idx = over.nonzero().squeeze(1)
            ai, bi, ri = a[idx], b[idx], r[idx].unsqueeze(1)
            s1 = ai.sort(1).values
            s2 = (ai - bi).sort(1).values
            zeros = torch.zeros(len(idx), 1, dtype=x.dtype, device=x.device)
            suf1 = torch.cat([s1.flip(1).cumsum(1).flip(1), zeros], 1)
            suf2 = torch.cat([s2.flip(1).cumsum(1).flip(1), zeros], 1)
            q = torch.cat([s1, s2, zeros], 1).clamp_min(0).sort(1).values  # candidate lams
            g = _sum_relu(s1, suf1, q.contiguous()) - _sum_relu(s2, suf2, q.contiguous())
            k = (g > ri).sum(1, keepdim=True)  # g decreasing: q[k-1] has g > r >= g[k]
            k = k.clamp(1, q.shape[1] - 1)
            q0, q1 = q.gather(1, k - 1), q.gather(1, k)
            g0, g1 = g.gather(1, k - 1), g.gather(1, k)
            frac = ((g0 - ri) / (g0 - g1).clamp_min(1e-30)).clamp(0, 1)
            lam[idx] = (q0 + frac * (q1 - q0)).squeeze(1)
        u = torch.minimum((a - lam.unsqueeze(1)).clamp_min(0), b) * d.sign()
        z = torch.where(per_sample(over, x), x + u.reshape(x.shape), x_adv)
        return self.clip(z)  # rows inside the ball are only boxed: no rounding through x + u

    def _sample_ball(self, x, generator):
        n, dim = x.shape[0], _flat(x).shape[1]
        e = -torch.log(_rand((n, dim + 1), x, generator).clamp_min(1e-30))  # exponentials
        u = (e / e.sum(1, keepdim=True))[:, :dim]  # uniform on the simplex interior
        signs = _rand((n, dim), x, generator).lt(0.5).to(x.dtype) * 2 - 1
        return (u * signs * self.radius(x).unsqueeze(1)).reshape(x.shape)

    def step(self, grad, x_adv=None):
        g = _flat(grad)
        if x_adv is not None:  # coordinates pinned at a bound cannot move further outward
            lo, hi = self.box(x_adv)
            xa = _flat(x_adv)
            stuck = ((g > 0) & (xa >= _flat(hi.expand_as(x_adv)))) | ((g < 0) & (xa <= _flat(lo.expand_as(x_adv))))
            g = g.masked_fill(stuck, 0)
        k = max(1, int(math.ceil(self.sparsity * g.shape[1])))
        top = g.abs().topk(k, dim=1).values[:, -1:]
        s = torch.where((g.abs() >= top) & (g != 0), g.sign(), torch.zeros_like(g))
        s = s / s.abs().sum(1, keepdim=True).clamp_min(1)
        return s.reshape(grad.shape)


class L0(Threat):
    """At most ``k`` input components changed (eps = k, an integer)."""

    norm_name = "l0"

    def __init__(self, k: int, bounds=(0.0, 1.0)):
        if isinstance(k, float) and not float(k).is_integer():
            raise ValueError(f"k must be a whole number of components, got {k!r}")
        super().__init__(k, bounds)

    @property
    def k(self) -> int:
        return int(self.eps)

    def norm(self, delta: Tensor) -> Tensor:
        return (_flat(delta) != 0).sum(dim=1).to(delta.dtype)

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        z = self.clip(x_adv)
        d = _flat(z - x)
        k = min(self.k, d.shape[1])
        if k == d.shape[1]:
            return z
        keep = torch.zeros_like(d, dtype=torch.bool)
        if k > 0:
            keep.scatter_(1, d.abs().topk(k, dim=1).indices, True)
        return torch.where(keep.reshape(x.shape), z, x)

    def _sample_ball(self, x, generator):
        lo, hi = self.box(x)
        target = lo + (hi - lo) * _rand(x.shape, x, generator)
        d = _flat(target - x)
        scores = _rand(d.shape, x, generator)
        keep = torch.zeros_like(d, dtype=torch.bool)
        k = min(self.k, d.shape[1])
        if k > 0:
            keep.scatter_(1, scores.topk(k, dim=1).indices, True)
        return (d * keep).reshape(x.shape)

    def step(self, grad, x_adv=None):
        return grad / per_sample(_flat(grad).norm(dim=1).clamp_min(1e-12), grad)
