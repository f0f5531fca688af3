"""Expectation over Transformation for audio: attacks that survive playback.

Athalye, Engstrom, Ilyas & Kwok, "Synthesizing Robust Adversarial Examples",
ICML 2018 (https://arxiv.org/abs/1707.07397): to fool a model under random
transformations t ~ T, maximise E_t[loss(model(t(x)))] instead of
loss(model(x)). ``EOT(model, n, transform=playback())`` (:class:`advx.model.EOT`,
re-exported here) is that expectation as a model wrapper: each call draws ``n``
random playbacks per clip (:func:`~advx.audio.transforms.playback`: room
response, gain, time shift, noise) and averages the model's outputs, so every
gradient attack (PGD, APGD, the C&W dB attack) becomes an EOT attack unchanged,
with gradients averaged over the same draws (Qin et al. 2019 used this for
over-the-air speech). :func:`success_under` measures how often an adversarial
clip survives fresh random playbacks.

Accounting: one call of the wrapper is ``n`` forward passes of the wrapped
model; ``AttackResult.queries`` counts calls of the wrapper.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advx.attacks.base import is_adversarial
from advx.audio.transforms import Transform, playback
from advx.model.eot import EOT

__all__ = ["EOT", "success_under"]


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
