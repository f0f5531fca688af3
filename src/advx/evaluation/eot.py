"""Randomised models in an evaluation: :func:`is_random` detects one, :class:`EOT` averages it.

Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of
Security", ICML 2018 (https://arxiv.org/abs/1802.00420), section 4.3: against a
model whose forward pass is random, attack the expectation over its randomness.
``evaluate(..., eot=N)`` wraps the model in :class:`advx.model.EOT` (re-exported
here): one call runs N passes as one batch and returns their mean logits, so an
attack differentiating through it gets the mean of the passes' gradients. Each
call of the wrapper costs N forwards (and N backwards through it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from advx.model import ModelFn
from advx.model.eot import EOT

__all__ = ["EOT", "is_random"]


def is_random(model: ModelFn, x: Tensor, rtol: float = 1e-5) -> tuple[int, float, int]:
    """Forward ``x`` twice: (rows whose logits differ, max |difference|, rows whose prediction changed)."""
    with torch.no_grad():
        a, b = model(x), model(x)
    diff = (a - b).abs().reshape(len(a), -1)
    scale = rtol * (1.0 + a.abs().reshape(len(a), -1).amax(1, keepdim=True))
    rows = int((diff > scale).any(1).sum())
    max_diff = float(diff.max()) if diff.numel() else 0.0
    changed = int((a.argmax(1) != b.argmax(1)).sum())
    return rows, max_diff, changed
