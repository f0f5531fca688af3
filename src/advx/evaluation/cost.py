"""Counting what an evaluation costs: model passes, counted at the model.

:class:`PassCounter` wraps a model and counts every sample that goes through it
forwards and every sample a gradient flows back through (one per backward call
through the output, so a C-class Jacobian of one sample counts C). It counts at
the model, not from the attacks' own bookkeeping, so any two evaluations
(advx's presets, another library's AutoAttack) are compared by the same rule.

:class:`Budget` is the hard limit behind ``evaluate(..., budget=PASSES)``: a
running total of the passes the ensemble has spent; once it is reached no
further attack is started, and the report says which points and attacks were
not run.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

__all__ = ["PassCounter", "Budget", "count_passes"]


class PassCounter(nn.Module):
    """``model`` with counts of the samples passed forwards and backwards through it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.forwards = 0
        self.backwards = 0

    @property
    def passes(self) -> int:
        """Forward plus backward samples."""
        return self.forwards + self.backwards

    def reset(self) -> None:
        self.forwards = self.backwards = 0

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        n = int(x.shape[0])
        self.forwards += n
        if out.requires_grad:
            def hook(grad: Tensor) -> None:
                self.backwards += n

            out.register_hook(hook)
        return out


@dataclass
class Budget:
    """A hard cap on the model passes (forward + backward samples) an evaluation's attacks may spend."""

    limit: int | None
    spent: int = 0

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def left(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.spent, 0)

    def charge(self, passes: int) -> None:
        self.spent += int(passes)


def count_passes(model: nn.Module) -> PassCounter:
    """Wrap ``model`` (in its current mode) in a :class:`PassCounter`."""
    counter = PassCounter(model)
    counter.train(model.training)
    return counter
