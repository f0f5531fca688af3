"""Losses that attacks *maximise*, untargeted and targeted.

Each takes logits (N, C), labels y (N,) and an optional target (N,) and returns
a per-sample loss (N,). Higher means closer to (or further past) success.

* ``ce``      -- cross-entropy of y; targeted: minus cross-entropy of target.
* ``margin``  -- the C&W logit margin (Carlini & Wagner 2017), max_{j!=y} z_j - z_y;
  targeted: z_t - max_{j!=t} z_j. Invariant to softmax saturation.
* ``dlr``     -- Difference of Logits Ratio (Croce & Hein 2020): the margin divided
  by z_(1) - z_(3) (targeted: by z_(1) - (z_(3) + z_(4)) / 2), invariant to
  shifting and scaling the logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LossFn = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]

__all__ = ["ce", "margin", "dlr", "LOSSES", "get_loss"]


def _other_max(logits: Tensor, label: Tensor) -> Tensor:
    return logits.scatter(1, label[:, None], -torch.inf).amax(dim=1)


def ce(logits: Tensor, y: Tensor, target: Tensor | None = None) -> Tensor:
    if target is not None:
        return -F.cross_entropy(logits, target, reduction="none")
    return F.cross_entropy(logits, y, reduction="none")


def margin(logits: Tensor, y: Tensor, target: Tensor | None = None) -> Tensor:
    if target is not None:
        return logits.gather(1, target[:, None]).squeeze(1) - _other_max(logits, target)
    return _other_max(logits, y) - logits.gather(1, y[:, None]).squeeze(1)


def dlr(logits: Tensor, y: Tensor, target: Tensor | None = None) -> Tensor:
    srt = logits.sort(dim=1, descending=True).values
    if srt.shape[1] < (4 if target is not None else 3):
        raise ValueError(f"the DLR loss needs at least {4 if target is not None else 3} classes, the model has {srt.shape[1]}")
    if target is not None:
        z_y = logits.gather(1, y[:, None]).squeeze(1)
        z_t = logits.gather(1, target[:, None]).squeeze(1)
        return -(z_y - z_t) / (srt[:, 0] - 0.5 * (srt[:, 2] + srt[:, 3]) + 1e-12)
    return margin(logits, y) / (srt[:, 0] - srt[:, 2] + 1e-12)


LOSSES: dict[str, LossFn] = {"ce": ce, "margin": margin, "cw": margin, "dlr": dlr}


def get_loss(name: str | LossFn) -> LossFn:
    if callable(name):
        return name
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"loss must be one of {sorted(LOSSES)} or a callable, got {name!r}") from None
