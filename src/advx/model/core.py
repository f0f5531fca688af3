"""What attacks see: a callable from inputs in bounds to logits.

* :class:`Normalized` puts a per-channel normalisation in front of a model, for
  any layout (channels first, channels last, 1-D signals).
* :func:`attack_mode` is the guard every attack runs under: the model is put in
  eval mode (with a warning if it was training), its parameters stop requiring
  gradients (so no parameter gradient is ever computed or accumulated), and
  both are restored on exit, even after an exception.
* :class:`QueryCounter` counts forward and backward passes per sample.
* :func:`input_gradient` is the one place gradients are taken: with respect
  to the input only, via ``torch.autograd.grad``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Union

import torch
from torch import Tensor, nn

__all__ = ["Normalized", "attack_mode", "QueryCounter", "input_gradient", "ModelFn"]

log = logging.getLogger(__name__)

ModelFn = Callable[[Tensor], Tensor]
Stat = Union[float, Sequence[float], Tensor]


class Normalized(nn.Module):
    """``model((x - mean) / std)``: normalisation as part of the model.

    ``mean`` and ``std`` are scalars or 1-D per-channel values; ``dim`` names
    the channel dimension of the batch (1 for NCHW, -1 for NHWC or (N, T, C)).
    """

    def __init__(self, model: nn.Module, mean: Stat, std: Stat, dim: int = 1):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32)
        std_t = torch.as_tensor(std, dtype=torch.float32)
        if bool((std_t <= 0).any()):
            raise ValueError(f"std must be > 0 everywhere, got {std!r}")
        if mean_t.dim() > 1 or std_t.dim() > 1:
            raise ValueError("mean and std must be scalars or 1-D per-channel sequences")
        self.model = model
        self.dim = dim
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def _shape(self, stat: Tensor, x: Tensor) -> Tensor:
        if stat.dim() == 0:
            return stat.to(x.dtype)
        dim = self.dim % x.dim()
        if x.shape[dim] != stat.shape[0]:
            raise ValueError(
                f"Normalized: input has {x.shape[dim]} channels in dim {self.dim}, "
                f"mean/std have {stat.shape[0]}; set dim= to the channel dimension"
            )
        shape = [1] * x.dim()
        shape[dim] = -1
        return stat.to(x.dtype).reshape(shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.model((x - self._shape(self.mean, x)) / self._shape(self.std, x))


@contextlib.contextmanager
def attack_mode(model: ModelFn) -> Iterator[ModelFn]:
    """Run ``model`` in eval mode with frozen parameters; restore both on exit."""
    if not isinstance(model, nn.Module):
        yield model
        return
    modes = {m: m.training for m in model.modules()}
    flags = {p: p.requires_grad for p in model.parameters()}
    if model.training:
        warnings.warn(
            "model is in training mode; advx attacks it in eval mode and restores "
            "training mode afterwards (call model.eval() to silence this)",
            stacklevel=4,
        )
    model.eval()
    for p in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for m, mode in modes.items():
            m.training = mode
        for p, flag in flags.items():
            p.requires_grad_(flag)


class QueryCounter:
    """Forward and backward passes spent on each of N samples."""

    def __init__(self, n: int, device: torch.device | str = "cpu"):
        self.forwards = torch.zeros(n, dtype=torch.long, device=device)
        self.backwards = torch.zeros(n, dtype=torch.long, device=device)

    def add(self, idx: Tensor | None, forwards: int = 1, backwards: int = 0) -> None:
        if idx is None:
            self.forwards += forwards
            self.backwards += backwards
        else:
            self.forwards.index_add_(0, idx, torch.full_like(idx, forwards))
            if backwards:
                self.backwards.index_add_(0, idx, torch.full_like(idx, backwards))

    @property
    def total(self) -> Tensor:
        return self.forwards + self.backwards


def input_gradient(
    model: ModelFn,
    x: Tensor,
    loss_fn: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample loss, its gradient with respect to ``x``, and the logits.

    ``loss_fn`` maps logits (N, C) to a per-sample loss (N,). The gradient of the
    sum is taken with ``torch.autograd.grad`` with respect to ``x`` only.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = model(x)
        loss = loss_fn(logits)
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad.detach(), logits.detach()
