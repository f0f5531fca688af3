"""Threat models: the sets an adversary may move in.

A threat is an eps-ball around the clean input in some norm, intersected with
the box of valid inputs (``bounds``). It owns all of the geometry an attack or a
check needs, so that no code outside :mod:`advx.threat` switches on threat types:

* ``project(x_adv, x)`` -- the exact Euclidean projection onto ball ∩ box,
* ``distance(x_adv, x)`` -- per-sample size of the perturbation in its norm,
* ``random_start(x, generator)`` -- a uniform random point of the ball (then boxed),
* ``step(grad, x_adv)`` -- the normalised steepest-ascent direction for the norm,
* ``dual_norm(grad)`` -- sup of <grad, d> over the unit ball (Hölder's dual norm),
* ``linear_gain(grad, x)`` -- sup of <grad, d> over the ball around ``x`` (box ignored),
* ``hyperplane_step(w, c)`` -- the smallest d in the norm with <w, d> = c (box ignored),
* ``radius(x)`` -- the per-sample radius (constant here; relative for audio),
* ``unbounded(x)`` -- the same threat with a radius covering the whole box,
* ``check_scale(x)`` -- refuse a radius that looks like a unit mistake (``linf:8`` on [0, 1]),
* ``str(threat)`` -- a spec string that :func:`advx.threat.parse_threat` reads back to an equal threat.

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
    #: the exponent p of the Lp norm (inf, 2, 1, 0); NaN for a threat that is no Lp ball
    p: float = math.nan
    #: the bounds a spec string leaves out (``linf:0.1`` means bounds (0, 1))
    default_bounds: tuple[float, float] = (0.0, 1.0)
    #: ``project`` acts on each input component alone (given x): a component of the projection depends on that
    #: component of x_adv only, so an attack may project candidate values of a component once and pick among them
    separable: bool = False

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
        """Low and high bounds shaped to broadcast against batch ``x`` (made once per device, dtype and layout)."""
        key = (x.device, x.dtype, x.dim(), x.shape[1] if x.dim() >= 3 else None)
        cache = self.__dict__.setdefault("_boxes", {})
        got = cache.get(key)
        if got is None or got[0] is not self._lo or got[1] is not self._hi:
            got = cache[key] = (self._lo, self._hi, self._box(x))
        return got[2]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_boxes", None)  # box()'s cache of tensors on the devices used here: made again where it is used
        return state

    def _box(self, x: Tensor) -> tuple[Tensor, Tensor]:
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

    # ---------------------------------------------------------- dual geometry
    @abstractmethod
    def dual_norm(self, grad: Tensor) -> Tensor:
        """Per-sample dual norm of ``grad`` (N, ...) -> (N,): sup of <grad, d> over ||d|| <= 1 (Hölder)."""

    def linear_gain(self, grad: Tensor, x: Tensor) -> Tensor:
        """sup of <grad, d> over the ball around ``x`` (box ignored), shape (N,): dual norm times radius."""
        return self.dual_norm(grad) * self.radius(x).to(grad.dtype)

    def hyperplane_step(self, w: Tensor, c: Tensor) -> Tensor:
        """The smallest d in this norm with <w, d> = c (box ignored); ``c`` (N,), ``w`` and d (N, ...)."""
        return per_sample(c / self.dual_norm(w).clamp_min(1e-12), w) * self.step(w)

    # ---------------------------------------------------------------- scale
    def _widths(self, x: Tensor) -> Tensor:
        """The box's width per component of one sample, flattened, float64."""
        lo, hi = self.box(x[:1].double())
        return (hi - lo).expand_as(x[:1]).reshape(-1).to(torch.float64)

    @abstractmethod
    def _covering_eps(self, widths: Tensor) -> float:
        """The smallest radius whose ball covers a box with these component widths."""

    def unbounded(self, x: Tensor) -> Threat:
        """The same threat with a radius covering the whole box: every valid input is reachable from ``x``."""
        return self.with_eps(self._covering_eps(self._widths(x)))

    _diameter = "diameter"  #: what the covering radius is called in messages

    def _large_eps(self, widths: Tensor, x: Tensor) -> str | None:
        """Why eps looks like a unit mistake on a box of these widths (None: it does not).

        Default: eps beyond the covering radius (the box's diameter in the norm)."""
        diameter = float(self._covering_eps(widths))
        if self.eps <= diameter:
            return None
        return (f"{self} on data in {self._range_text()} with {widths.numel()} components: eps {_num(self.eps)} is "
                f"beyond the box's {self._diameter} {diameter:.4g}, so every valid input is reachable; did you mean "
                f"{self.norm_name}:{_num(self.eps / 255)} (the radius for data in [0, 255] rescaled to [0, 1])?")

    def check_scale(self, x: Tensor | None = None, *, allow_large_eps: bool = False) -> None:
        """Refuse a radius that covers (about) the whole data range, the mark of a unit mistake.

        An Linf eps of at least half the range, an L2 (L1) eps beyond the box's L2 (L1)
        diameter, or an L0 k above the number of components raises ValueError naming the
        likely fix, e.g. "linf:8 on data in [0, 1]: did you mean linf:8/255?".
        ``x`` is a batch (N, ...) giving the shape of one input; without it a single
        component (Linf) or the bounds' shape is used. ``allow_large_eps=True``
        (``--allow-large-eps``) accepts any radius.
        """
        if allow_large_eps:
            return
        if x is None:
            x = torch.zeros(1, *self._lo.shape) if self._lo.dim() else torch.zeros(1, 1)
        why = self._large_eps(self._widths(x), x)
        if why is not None:
            raise ValueError(f"{why} (if you mean it: allow_large_eps=True, on the command line --allow-large-eps)")

    def _range_text(self) -> str:
        lo, hi = self._lo, self._hi
        if lo.dim() == 0 and hi.dim() == 0:
            return f"[{_num(float(lo))}, {_num(float(hi))}]"
        return f"[{_num(float(lo.min()))}, {_num(float(hi.max()))}] (per channel)"

    # ---------------------------------------------------------- spec string
    def _options(self) -> dict[str, str]:
        """Spec options beyond the radius that differ from their defaults, as strings."""
        return {}

    def _radius_text(self) -> str:
        return _num(self.eps)

    def _bounds_text(self) -> str | None:
        lo, hi = self._lo, self._hi
        if lo.dim() == 0 and hi.dim() == 0 and (float(lo), float(hi)) == tuple(map(float, self.default_bounds)):
            return None

        def side(b: Tensor) -> str:
            return _num(float(b)) if b.dim() == 0 else "[" + ",".join(_num(float(v)) for v in b.reshape(-1)) + "]"

        if lo.dim() > 1 or hi.dim() > 1:
            raise ValueError(f"{type(self).__name__}: bounds of shape {tuple(lo.shape)} have no spec string")
        return f"{side(lo)}:{side(hi)}"

    def __str__(self) -> str:
        parts = [self._radius_text()]
        bounds = self._bounds_text()
        if bounds is not None:
            parts.append(f"bounds={bounds}")
        parts += [f"{k}={v}" for k, v in self._options().items()]
        return f"{self.norm_name}:" + ",".join(parts)

    def _key(self) -> tuple:
        return (type(self), self.eps, tuple(self._lo.shape), tuple(self._lo.reshape(-1).tolist()),
                tuple(self._hi.shape), tuple(self._hi.reshape(-1).tolist()), tuple(sorted(self._options().items())))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Threat):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        lo, hi = self._lo, self._hi
        b = f"({lo.item():g}, {hi.item():g})" if lo.dim() == 0 and hi.dim() == 0 else "per-channel"
        return f"{type(self).__name__}({self.eps:g}, bounds={b})"


def _num(v: float) -> str:
    """A number as a spec string reads it back exactly: 3, 8/255, 0.1 (Python's shortest round trip)."""
    v = float(v)
    if v.is_integer() and abs(v) < 2**53:
        return str(int(v))
    short = repr(v)
    k = round(v * 255)
    if len(short) > 8 and k != 0 and k / 255 == v:
        return f"{k}/255"
    return short


def _randn(shape, x: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else x.device
    return torch.randn(shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def _rand(shape, x: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else x.device
    return torch.rand(shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


class Linf(Threat):
    """L-infinity ball: every input component moves by at most eps."""

    norm_name = "linf"
    p = math.inf
    separable = True

    def norm(self, delta: Tensor) -> Tensor:
        return _flat(delta).abs().amax(dim=1)

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        r = per_sample(self.radius(x), x)
        return self.clip(torch.maximum(torch.minimum(x_adv, x + r), x - r))

    def _sample_ball(self, x, generator):
        return (2 * _rand(x.shape, x, generator) - 1) * per_sample(self.radius(x), x)

    def step(self, grad, x_adv=None):
        return grad.sign()

    def dual_norm(self, grad: Tensor) -> Tensor:
        return _flat(grad).norm(p=1, dim=1)

    def hyperplane_step(self, w: Tensor, c: Tensor) -> Tensor:
        return per_sample(c / self.dual_norm(w).clamp_min(1e-12), w) * w.sign()

    def _covering_eps(self, widths: Tensor) -> float:
        return float(widths.max())

    def _large_eps(self, widths: Tensor, x: Tensor) -> str | None:
        half = 0.5 * float(widths.max())
        if self.eps < half:
            return None
        hint = f"did you mean linf:{_num(self.eps)}/255?" if 1 <= self.eps <= 255 and half <= 0.5 else \
            "a ball this large reaches (almost) every valid input"
        return f"{self} on data in {self._range_text()}: eps {_num(self.eps)} is at least half the data range; {hint}"


class L2(Threat):
    """Euclidean ball."""

    norm_name = "l2"
    p = 2.0

    def norm(self, delta: Tensor) -> Tensor:
        return _flat(delta).norm(p=2, dim=1)

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        # z(t) = clip(x + t*d) for t in [0, 1]; ||z(t) - x||^2 is nondecreasing and
        # piecewise quadratic in t, with a breakpoint where each coordinate meets
        # its bound. The projection is z(t*) for the largest t* with norm <= r.
        lo, hi = self.box(x)
        n = x.shape[0]
        diff = x_adv - x
        d = _flat(diff)
        xf = _flat(x)
        lo_f = _flat(lo.expand_as(x))
        hi_f = _flat(hi.expand_as(x))
        r2 = self.radius(x).pow(2)
        room = torch.where(d > 0, hi_f - xf, lo_f - xf)  # signed distance to the bound hit
        with torch.no_grad():
            zero = d == 0
            safe_d = torch.where(zero, 1.0, d)
            tb = torch.where(zero, math.inf, room / safe_d).clamp_min(0)
        clipped_sq = torch.where(tb <= 1, room.pow(2), d.pow(2))  # contribution at t=1
        inside = clipped_sq.sum(1) <= r2
        if bool(inside.all()) and x_adv.dtype == x.dtype:  # t* = 1 on every row
            return self.clip(x_adv)
        full = tb.clamp_max(1)  # coordinate's t at which it saturates (<=1)
        idx = (~inside).nonzero().squeeze(1)
        every = len(idx) == n  # no row inside: no gathering of rows

        def rows(t: Tensor) -> Tensor:
            return t if every else t[idx]

        tbs, order = rows(full).sort(dim=1)
        dd = rows(d).gather(1, order).pow(2)
        cc = rows(room).gather(1, order).pow(2)
        cum_c = cc.cumsum(1)  # clipped contributions of first j+1 breakpoints
        dd_sum = dd.sum(1, keepdim=True)
        rest_d = dd_sum - dd.cumsum(1)  # free d^2 after them
        f = cum_c + tbs.pow(2) * rest_d  # ||z(t_j) - x||^2 at each breakpoint
        r2_out = rows(r2).unsqueeze(1)
        j = (f < r2_out).sum(1, keepdim=True)  # first breakpoint over r^2
        prev_c = torch.where(j > 0, cum_c.gather(1, (j - 1).clamp_min(0)), torch.zeros_like(j, dtype=x.dtype))
        prev_rest = torch.where(j > 0, rest_d.gather(1, (j - 1).clamp_min(0)), dd_sum)
        t = ((r2_out - prev_c).clamp_min(0) / prev_rest.clamp_min(1e-30)).sqrt().squeeze(1).clamp(0, 1)
        if every:
            t_star = t.to(x.dtype)  # as the assignment below casts
        else:
            t_star = torch.ones(n, dtype=x.dtype, device=x.device)
            t_star[idx] = t
        t_s = per_sample(t_star, x)
        z = torch.where(t_s >= 1, x_adv, x + t_s * diff)
        return self.clip(z)  # rows inside the ball are only boxed: no rounding through x + (x_adv - x)

    def _sample_ball(self, x, generator):
        g = _randn(x.shape, x, generator)
        g = g / _flat(g).norm(dim=1).clamp_min(1e-12).reshape(-1, *([1] * (x.dim() - 1)))
        dim = _flat(x).shape[1]
        u = _rand((x.shape[0],), x, generator).pow(1.0 / dim)
        return g * per_sample(u * self.radius(x), x)

    def step(self, grad, x_adv=None):
        return grad / per_sample(_flat(grad).norm(dim=1).clamp_min(1e-12), grad)

    def dual_norm(self, grad: Tensor) -> Tensor:
        return _flat(grad).norm(p=2, dim=1)

    def hyperplane_step(self, w: Tensor, c: Tensor) -> Tensor:
        return per_sample(c / self.dual_norm(w).clamp_min(1e-12).pow(2), w) * w

    def _covering_eps(self, widths: Tensor) -> float:
        return float(widths.norm())


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
    p = 1.0
    _diameter = "L1 diameter"

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

    def step(self, grad, x_adv=None, k: int | Tensor | None = None):
        """Signs of the ``k`` largest gradient coordinates that can still move, scaled to unit L1 norm.

        ``k``: coordinates per sample, an int or a (N,) tensor (APGD-L1 adapts it per sample);
        default ``ceil(sparsity * D)``.
        """
        g = _flat(grad)
        if x_adv is not None:  # coordinates pinned at a bound cannot move further outward
            lo, hi = self.box(x_adv)
            xa = _flat(x_adv)
            stuck = ((g > 0) & (xa >= _flat(hi.expand_as(x_adv)))) | ((g < 0) & (xa <= _flat(lo.expand_as(x_adv))))
            g = g.masked_fill(stuck, 0)
        if k is None:
            k = max(1, int(math.ceil(self.sparsity * g.shape[1])))
        if isinstance(k, Tensor):  # per sample: the k-th largest |g| of each row
            k = k.to(device=g.device, dtype=torch.long).clamp(1, g.shape[1]).reshape(-1, 1)
            top = g.abs().sort(dim=1, descending=True).values.gather(1, k - 1)
        else:
            top = g.abs().topk(min(max(1, int(k)), g.shape[1]), dim=1).values[:, -1:]
        s = torch.where((g.abs() >= top) & (g != 0), g.sign(), torch.zeros_like(g))
        s = s / s.abs().sum(1, keepdim=True).clamp_min(1)
        return s.reshape(grad.shape)

    def dual_norm(self, grad: Tensor) -> Tensor:
        return _flat(grad).norm(p=math.inf, dim=1)

    def hyperplane_step(self, w: Tensor, c: Tensor) -> Tensor:
        wf = _flat(w)
        top = wf.abs().argmax(dim=1, keepdim=True)
        d = torch.zeros_like(wf).scatter_(1, top, 1.0) * wf.sign()
        return per_sample(c / self.dual_norm(w).clamp_min(1e-12), w) * d.reshape(w.shape)

    def _covering_eps(self, widths: Tensor) -> float:
        return float(widths.sum())

    def _options(self) -> dict[str, str]:
        return {} if self.sparsity == 0.01 else {"sparsity": repr(self.sparsity)}


class L0(Threat):
    """At most ``k`` input components changed (eps = k, an integer)."""

    norm_name = "l0"
    p = 0.0

    def __init__(self, k: int, bounds=(0.0, 1.0)):
        if isinstance(k, bool) or (isinstance(k, float) and not float(k).is_integer()):
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

    def dual_norm(self, grad: Tensor) -> Tensor:
        """Sum of the k largest |grad_i|: sup of <grad, d> over k-sparse d with |d_i| <= 1 (L0 is no norm)."""
        g = _flat(grad).abs()
        return g.topk(min(self.k, g.shape[1]), dim=1).values.sum(1)

    def linear_gain(self, grad: Tensor, x: Tensor) -> Tensor:
        """k components, each moved across the widest box side."""
        return self.dual_norm(grad) * float(self._widths(x).max())

    def hyperplane_step(self, w: Tensor, c: Tensor) -> Tensor:
        return per_sample(c / self.dual_norm(w).clamp_min(1e-12), w) * self._top_signs(w)

    def _top_signs(self, w: Tensor) -> Tensor:
        wf = _flat(w)
        keep = torch.zeros_like(wf, dtype=torch.bool)
        k = min(self.k, wf.shape[1])
        if k > 0:
            keep.scatter_(1, wf.abs().topk(k, dim=1).indices, True)
        return (wf.sign() * keep).reshape(w.shape)

    def _covering_eps(self, widths: Tensor) -> float:
        return widths.numel()

    def _large_eps(self, widths: Tensor, x: Tensor) -> str | None:
        if self.k <= widths.numel():
            return None
        return f"{self}: k = {self.k} components, but one input has only {widths.numel()}"
