"""Expectation over Transformation for randomised models.

Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of
Security", ICML 2018 (https://arxiv.org/abs/1802.00420), section 4.3: against a
model whose forward pass is random, attack the expectation over its randomness.
:class:`EOT` wraps a model so that one call runs ``n`` forward passes and
returns their mean logits. An attack differentiating through it therefore gets
the mean of the ``n`` passes' input Jacobians (chained with the loss at the
averaged logits): the Monte-Carlo EOT gradient, without changing any attack.
Each call of the wrapper costs ``n`` forwards (and ``n`` backwards through it).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advx.model import ModelFn

__all__ = ["EOT"]


class EOT(nn.Module):
    """``mean(model(x) for _ in range(n))``: the model averaged over its randomness.

    Args:
        model: a randomised model (a module or any callable returning logits).
        n: forward passes averaged per call (>= 1).
    """

    def __init__(self, model: ModelFn, n: int):
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"eot must be a whole number of forward passes >= 1, got {n!r}")
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        self.model = model
        self.n = n
        self.train(model.training if isinstance(model, nn.Module) else False)

    def forward(self, x: Tensor) -> Tensor:
        total = self.model(x)
        for _ in range(self.n - 1):
            total = total + self.model(x)
        return total / self.n

    def extra_repr(self) -> str:
        return f"n={self.n}"


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
