"""Expectation over Transformation (the one EOT wrapper), image transforms, the adversarial patch.

* EOT -- Athalye, Engstrom, Ilyas & Kwok, "Synthesizing Robust Adversarial
  Examples", ICML 2018 (https://arxiv.org/abs/1707.07397): optimise the
  expected loss over a distribution of transformations t(x). :class:`EOT`
  wraps a model so that any attack does so: its forward averages the logits
  (or probabilities) of ``n`` random draws of the input, run as one batch, and
  the gradient of that average is the average gradient over the draws (the
  Monte-Carlo EOT gradient). With no transform it averages a randomised model
  over its own randomness, as Athalye, Carlini & Wagner, "Obfuscated Gradients
  Give a False Sense of Security", ICML 2018 (https://arxiv.org/abs/1802.00420),
  section 4.3, do against randomised defenses. It serves images (the transforms
  below), audio (``advx.audio`` playback transforms), randomised defenses
  (``advx.defenses``) and ``advx evaluate --eot``; those packages re-export it.
* Differentiable image transforms written on torch, each drawing per-sample
  parameters from a generator: :class:`RandomAffine` (rotation, scale,
  translation), :class:`BrightnessContrast`, :class:`GaussianNoise`,
  :class:`Compose`.
* Adversarial patch -- Brown, Mane, Roy, Abadi & Gilmer, "Adversarial Patch",
  2017 (https://arxiv.org/abs/1712.09665): one universal patch, trained over
  random images, placements and transforms to maximise the log-probability of
  a target class; :meth:`AdversarialPatch.evaluate` reports its target-class
  rate on held-out images and placements against a random patch.

Image inputs are (N, C, H, W) inside ``bounds``; the transforms clip back into them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advx.model.core import ModelFn, attack_mode

__all__ = ["RandomAffine", "BrightnessContrast", "GaussianNoise", "Compose", "EOT", "AdversarialPatch"]


def _uniform(n: int, lo: float, hi: float, like: Tensor, g: torch.Generator | None) -> Tensor:
    device = g.device if g is not None else like.device
    return (lo + (hi - lo) * torch.rand(n, generator=g, device=device)).to(like)


def _check_image(x: Tensor, who: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{who} works on images (N, C, H, W), got shape {tuple(x.shape)}")


class _Transform:
    bounds: tuple[float, float] = (0.0, 1.0)

    def _clip(self, x: Tensor) -> Tensor:
        return x.clamp(*self.bounds)


class RandomAffine(_Transform):
    """Rotation by up to ``degrees``, scale in ``scale``, shift by up to ``translate`` of the size.

    Bilinear resampling (``F.grid_sample``); the area brought in from outside is ``fill``.
    """

    def __init__(self, degrees: float = 15.0, scale: tuple[float, float] = (0.9, 1.1), translate: float = 0.1,
                 fill: float = 0.0):
        if degrees < 0 or translate < 0 or not 0 < scale[0] <= scale[1]:
            raise ValueError("degrees and translate must be >= 0 and scale an increasing pair of positive numbers")
        self.degrees, self.scale, self.translate, self.fill = float(degrees), tuple(scale), float(translate), float(fill)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        _check_image(x, "RandomAffine")
        n = len(x)
        angle = _uniform(n, -self.degrees, self.degrees, x, generator) * math.pi / 180
        s = _uniform(n, *self.scale, x, generator)
        tx = _uniform(n, -self.translate, self.translate, x, generator) * 2
        ty = _uniform(n, -self.translate, self.translate, x, generator) * 2
        cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out + self.fill


class BrightnessContrast(_Transform):
    """x -> (x - mean) * c + mean + b, with c in ``contrast`` and b in ``brightness``; clipped to ``bounds``."""

    def __init__(self, brightness: tuple[float, float] = (-0.1, 0.1), contrast: tuple[float, float] = (0.8, 1.2),
                 bounds: tuple[float, float] = (0.0, 1.0)):
        self.brightness, self.contrast, self.bounds = tuple(brightness), tuple(contrast), tuple(bounds)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        n = len(x)
        shape = (n, *([1] * (x.dim() - 1)))
        b = _uniform(n, *self.brightness, x, generator).reshape(shape)
        c = _uniform(n, *self.contrast, x, generator).reshape(shape)
        mean = x.flatten(1).mean(1).reshape(shape)
        return self._clip((x - mean) * c + mean + b)


class GaussianNoise(_Transform):
    """Additive N(0, std^2) noise, clipped to ``bounds``."""

    def __init__(self, std: float = 0.02, bounds: tuple[float, float] = (0.0, 1.0)):
        if std < 0:
            raise ValueError(f"std must be >= 0, got {std!r}")
        self.std, self.bounds = float(std), tuple(bounds)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        device = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape, generator=generator, device=device).to(x)
        return self._clip(x + self.std * noise)


class Compose(_Transform):
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for t in self.transforms:
            x = t(x, generator)
        return x


class EOT(nn.Module):
    """``model`` averaged over ``n`` random draws per input: E_t[model(t(x))], or E[model(x)] for a random model.

    The one EOT wrapper of advx (also ``advx.evaluation.EOT``, ``advx.defenses.EOT``
    and ``advx.audio.EOT``). Each call repeats the batch ``n`` times (draw ``k`` of
    row ``i`` is row ``k * N + i``), applies ``transform`` to all ``n * N`` rows at
    once, runs the model in chunks of at most ``max_batch`` rows (whole draws per
    chunk) and averages over the draws. An attack differentiating through the
    wrapper gets the mean of the draws' gradients: the Monte-Carlo EOT gradient.
    One call costs ``n`` forward passes of ``model`` per input (``queries`` in an
    ``AttackResult`` counts calls of the wrapper).

    Args:
        model: a module or any callable returning logits (random itself, or not).
        n: draws averaged per call (>= 1).
        transform: random ``transform(x, generator) -> x'`` (images: :class:`RandomAffine`
            and friends; audio: :func:`advx.audio.transforms.playback`); ``None`` averages
            the model's own randomness (a randomised defense).
        average: ``"logits"`` (mean logits) or ``"probs"`` (log of the mean softmax: the
            log-probability of each class under the random draws).
        max_batch: the most rows per forward call of ``model``.
        seed: seeds the generator ``transform`` draws from; each call advances it and
            :meth:`reseed` restarts it. A model's own randomness is its own business.
    """

    def __init__(self, model: ModelFn, n: int = 16, *, transform: Callable | None = None, average: str = "logits",
                 max_batch: int = 4096, seed: int = 0):
        super().__init__()
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1 (draws averaged per call), got {n!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be None or a callable (x, generator) -> x', got {type(transform).__name__}")
        if average not in ("logits", "probs"):
            raise ValueError(f"average must be 'logits' or 'probs', got {average!r}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an int >= 1, got {max_batch!r}")
        self.model, self.n, self.transform = model, n, transform
        self.average, self.max_batch, self.seed = average, max_batch, int(seed)
        self._generator: torch.Generator | None = None
        self.train(model.training if isinstance(model, nn.Module) else False)  # take the model's mode

    def reseed(self, seed: int | None = None) -> EOT:
        """Restart the transforms' random sequence (from ``seed``, which becomes the wrapper's seed, if given)."""
        if seed is not None:
            self.seed = int(seed)
        self._generator = None
        return self

    def forward(self, x: Tensor) -> Tensor:
        m = x.shape[0]
        rows = x.unsqueeze(0).expand(self.n, *x.shape).reshape(self.n * m, *x.shape[1:])
        if self.transform is not None:
            if self._generator is None or self._generator.device != x.device:
                self._generator = torch.Generator(device=x.device).manual_seed(self.seed)
            rows = self.transform(rows, self._generator)
        step = max(m, (self.max_batch // max(m, 1)) * m)  # whole draws per chunk
        out = torch.cat([self.model(rows[i:i + step]) for i in range(0, len(rows), step)])
        out = out.reshape(self.n, m, *out.shape[1:])
        if self.average == "logits":
            return out.mean(0)
        return torch.logsumexp(torch.log_softmax(out, dim=-1), dim=0) - math.log(self.n)

    def extra_repr(self) -> str:
        return f"n={self.n}, average={self.average!r}, max_batch={self.max_batch}, seed={self.seed}"


class AdversarialPatch:
    """A universal targeted patch (Brown et al. 2017), trained over random placements.

    Args:
        target: the class the patch should force.
        size: patch height and width in pixels (a square patch).
        steps, lr, batch_size: Adam on the patch, one random batch of images per step.
        transform: extra random transform of the patch before placement (e.g. ``RandomAffine``);
            ``None`` places it as is.
        bounds: the input box; the patch stays inside it.
        seed: seeds images, placements and transforms.
    """

    def __init__(self, target: int, size: int = 8, steps: int = 200, lr: float = 0.05, batch_size: int = 32,
                 transform=None, bounds: tuple[float, float] = (0.0, 1.0), seed: int = 0):
        if int(size) < 1 or int(steps) < 1 or int(batch_size) < 1:
            raise ValueError("size, steps and batch_size must be >= 1")
        if int(target) < 0:
            raise ValueError(f"target must be a class index >= 0, got {target!r}")
        self.target, self.size, self.steps, self.lr = int(target), int(size), int(steps), float(lr)
        self.batch_size, self.transform, self.bounds, self.seed = int(batch_size), transform, tuple(bounds), int(seed)
        self.patch: Tensor | None = None

    def apply(self, x: Tensor, patch: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``x`` with ``patch`` (default: the trained one) pasted at a random place in each image."""
        patch = self.patch if patch is None else patch
        if patch is None:
            raise ValueError("patch: call fit() first or pass a patch")
        _check_image(x, "AdversarialPatch")
        n, c, h, w = x.shape
        s = self.size
        if s > min(h, w):
            raise ValueError(f"size {s} is larger than the images ({h}x{w}); use a smaller patch")
        p = patch.expand(n, c, s, s)
        if self.transform is not None:
            p = self.transform(p, generator)
        canvas = F.pad(p, (0, w - s, 0, h - s))
        mask = F.pad(torch.ones(n, 1, s, s, dtype=x.dtype, device=x.device), (0, w - s, 0, h - s))
        device = generator.device if generator is not None else x.device
        top = torch.randint(0, h - s + 1, (n,), generator=generator, device=device).to(x.device)
        left = torch.randint(0, w - s + 1, (n,), generator=generator, device=device).to(x.device)
        rows = (torch.arange(h, device=x.device)[None, :] - top[:, None]) % h  # roll each image by (top, left)
        cols = (torch.arange(w, device=x.device)[None, :] - left[:, None]) % w
        idx_r = rows[:, None, :, None].expand(n, c, h, w)
        idx_c = cols[:, None, None, :].expand(n, c, h, w)
        canvas = canvas.gather(2, idx_r).gather(3, idx_c)
        mask = mask.expand(n, c, h, w).gather(2, idx_r).gather(3, idx_c)
        return x * (1 - mask) + canvas * mask

    def fit(self, model: nn.Module, x: Tensor) -> Tensor:
        """Train the patch on images ``x`` (N, C, H, W); returns it (C, size, size)."""
        _check_image(x, "AdversarialPatch.fit")
        g = torch.Generator(device=x.device).manual_seed(self.seed)
        lo, hi = self.bounds
        init = lo + (hi - lo) * torch.rand((1, x.shape[1], self.size, self.size), generator=g, device=x.device)
        patch = init.to(x.dtype).requires_grad_(True)
        opt = torch.optim.Adam([patch], lr=self.lr)
        with attack_mode(model) as m:
            for _ in range(self.steps):
                batch = x[torch.randint(0, len(x), (self.batch_size,), generator=g, device=x.device)]
                logits = m(self.apply(batch, patch, g))
                target = torch.full((len(batch),), self.target, dtype=torch.long, device=x.device)
                loss = F.cross_entropy(logits, target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    patch.clamp_(lo, hi)
        self.patch = patch.detach()[0]
        return self.patch

    @torch.no_grad()
    def evaluate(self, model: nn.Module, x: Tensor, placements: int = 5, seed: int = 1) -> dict:
        """Target-class rate with the patch, over ``placements`` random placements of each image.

        Also reports the same with a random patch of the same size (the baseline) and
        on the clean images; images are meant to be held out from :meth:`fit`.
        """
        if self.patch is None:
            raise ValueError("call fit() before evaluate()")
        g = torch.Generator(device=x.device).manual_seed(seed)
        lo, hi = self.bounds
        rand_patch = lo + (hi - lo) * torch.rand(self.patch.shape, generator=g, device=x.device).to(x.dtype)
        hits = {"patch": 0, "random_patch": 0}
        with attack_mode(model) as m:
            clean = float((m(x).argmax(1) == self.target).float().mean())
            for _ in range(placements):
                for key, p in (("patch", self.patch), ("random_patch", rand_patch)):
                    hits[key] += int((m(self.apply(x, p, g)).argmax(1) == self.target).sum())
        total = placements * len(x)
        return {"target": self.target, "target_rate": hits["patch"] / total,
                "random_patch_rate": hits["random_patch"] / total, "clean_rate": clean,
                "images": len(x), "placements": placements}
