"""Expectation over Transformation for randomised defenses.

Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of
Security", ICML 2018 (https://arxiv.org/abs/1802.00420), section 4.3, after
Athalye, Engstrom, Ilyas & Kwok 2018: against a model f whose forward pass is
random, attack E_t[f(t(x))]. :class:`EOT` returns the mean over ``n``
independent draws, so any attack differentiating through it follows the
Monte-Carlo estimate of the expected gradient. The ``n`` draws run as one batch
of ``n * N`` inputs (in chunks of ``max_batch``), not ``n`` sequential passes.

``average="logits"`` averages logits (what ``advx.evaluation.EOT`` does);
``"probs"`` returns log E[softmax(f)], the classifier the randomised defense
actually deploys when it votes by probability.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["EOT"]


class EOT(nn.Module):
    """Mean of ``model`` over ``n`` random draws per input (logits, or log of the mean probabilities)."""

    def __init__(self, model: nn.Module, n: int = 16, average: str = "logits", max_batch: int = 4096):
        super().__init__()
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1 (draws per input), got {n!r}")
        if average not in ("logits", "probs"):
            raise ValueError(f"average must be 'logits' or 'probs', got {average!r}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an int >= 1, got {max_batch!r}")
        self.model, self.n, self.average, self.max_batch = model, n, average, max_batch
        self.train(model.training if isinstance(model, nn.Module) else False)  # take the model's mode

    def forward(self, x: Tensor) -> Tensor:
        m = x.shape[0]
        repeated = x.unsqueeze(0).expand(self.n, *x.shape).reshape(self.n * m, *x.shape[1:])
        step = max(m, (self.max_batch // max(m, 1)) * m)  # whole draws per chunk
        out = torch.cat([self.model(repeated[i:i + step]) for i in range(0, len(repeated), step)])
        out = out.reshape(self.n, m, -1)
        if self.average == "logits":
            return out.mean(0)
        return torch.logsumexp(torch.log_softmax(out, dim=2), dim=0) - math.log(self.n)

    def extra_repr(self) -> str:
        return f"n={self.n}, average={self.average!r}"
