"""Backward Pass Differentiable Approximation (BPDA).

Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of
Security: Circumventing Defenses to Adversarial Examples", ICML 2018
(https://arxiv.org/abs/1802.00420), section 4.1: when a defense puts a
non-differentiable transform g in front of the model (quantisation, JPEG, ...),
run g on the forward pass but differentiate a smooth h with h(x) ~ g(x) on the
backward pass -- the identity when g(x) ~ x. Written as
``h(x) + (g(x) - h(x)).detach()``: the value is g(x) exactly, the gradient is
that of h.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from advx.defenses.transforms import Defended

__all__ = ["BPDA", "bpda"]


class BPDA(nn.Module):
    """``transform`` on the forward pass, ``approx`` (default: the identity) on the backward pass."""

    def __init__(self, transform: Callable[[Tensor], Tensor], approx: Callable[[Tensor], Tensor] | None = None):
        super().__init__()
        if not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        if approx is not None and not callable(approx):
            raise TypeError(f"approx must be callable or None (the identity), got {type(approx).__name__}")
        self.transform, self.approx = transform, approx

    def forward(self, x: Tensor) -> Tensor:
        exact = self.transform(x.detach())
        smooth = x if self.approx is None else self.approx(x)
        return smooth + (exact - smooth).detach()


def bpda(model: Defended, approx: Callable[[Tensor], Tensor] | None = None) -> Defended:
    """``model`` with each non-differentiable transform behind :class:`BPDA` (same forward values).

    Each transform's own ``approximation()`` is used unless ``approx`` is given;
    differentiable transforms (median filter, noise) are kept as they are.
    """
    if not isinstance(model, Defended):
        raise TypeError(f"model must be an advx.defenses.Defended (a model behind transforms), got "
                        f"{type(model).__name__}; wrap a single transform with BPDA(transform) instead")
    wrapped = []
    for t in model.transforms:
        if getattr(t, "differentiable", True):
            wrapped.append(t)
        else:
            own = t.approximation() if hasattr(t, "approximation") else None
            wrapped.append(BPDA(t, approx if approx is not None else own))
    return Defended(model.model, *wrapped)
