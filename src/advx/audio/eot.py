"""Expectation over Transformation for audio: attacks that survive playback.

Athalye, Engstrom, Ilyas & Kwok, "Synthesizing Robust Adversarial Examples",
ICML 2018 (https://arxiv.org/abs/1707.07397): to fool a model under random
transformations t ~ T, maximise E_t[loss(model(t(x)))] instead of
loss(model(x)). :class:`EOT` is that expectation as a model wrapper: each call
draws ``samples`` transforms per clip (by default :func:`~advx.audio.transforms.playback`:
room response, gain, time shift, noise) and averages the model's outputs, so
every gradient attack (PGD, APGD, the C&W dB attack) becomes an EOT attack
unchanged, with gradients averaged over the same draws (Qin et al. 2019 used
this for over-the-air speech).

Accounting: one call of the wrapper is ``samples`` forward passes of the
wrapped model; ``AttackResult.queries`` counts calls of the wrapper.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advx.attacks.base import is_adversarial
from advx.audio.transforms import Transform, playback

__all__ = ["EOT", "success_under"]


class EOT(nn.Module):
    """``model`` averaged over ``samples`` random transforms of its input.

    Args:
        model: waveform (N, T) -> logits (N, C).
        transform: a random :class:`~advx.audio.transforms.Transform` (default: ``playback()``).
        samples: transforms drawn per clip and call.
        reduce: "logits" (mean of logits) or "probs" (log of the mean softmax, the
            log-probability of the class under the random playback).
        seed: seeds the wrapper's own generator; :meth:`reseed` restarts the sequence.
    """

    def __init__(self, model: nn.Module, transform: Transform | None = None, samples: int = 8,
                 reduce: str = "logits", seed: int = 0):
        super().__init__()
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        if int(samples) < 1:
            raise ValueError(f"samples must be >= 1, got {samples!r}")
        if reduce not in ("logits", "probs"):
            raise ValueError(f"reduce must be 'logits' or 'probs', got {reduce!r}")
        self.model = model
        self.transform = playback() if transform is None else transform
        self.samples, self.reduce, self.seed = int(samples), reduce, int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.train(bool(getattr(model, "training", False)))  # mirror the wrapped model's mode

    def reseed(self, seed: int | None = None) -> EOT:
        self.generator.manual_seed(self.seed if seed is None else int(seed))
        return self

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        rep = x.repeat(self.samples, *([1] * (x.dim() - 1)))  # draw k of clip i is row k * n + i
        out = self.model(self.transform(rep, self.generator)).reshape(self.samples, n, -1)
        if self.reduce == "logits":
            return out.mean(0)
        return torch.logsumexp(torch.log_softmax(out, dim=-1), dim=0) - torch.log(torch.tensor(float(self.samples)))


@torch.no_grad()
def success_under(model: nn.Module, x_adv: Tensor, y: Tensor, target: Tensor | None = None,
                  transform: Transform | None = None, draws: int = 16, seed: int = 1234) -> Tensor:
    """Per clip, the fraction of ``draws`` random transforms after which the attack still succeeds.

    Use a seed different from the one the attack optimised with: these are fresh playbacks.
    """
    transform = playback() if transform is None else transform
    g = torch.Generator().manual_seed(int(seed))
    hits = torch.zeros(len(x_adv), dtype=torch.float64)
    for _ in range(int(draws)):
        logits = model(transform(x_adv, g))
        hits += is_adversarial(logits, y, target).double().cpu()
    return hits / max(1, int(draws))
