"""Black-box views of a model: scores only or the top label only, under a query budget.

A red team rarely holds the model: it holds an API. These wrappers make any
model look like one, so that an attack can be checked to use only what the API
gives:

* :class:`ScoresOnly` -- the model's scores (logits, or probabilities with
  ``softmax=True``), never a gradient: backpropagating through it raises.
* :class:`LabelOnly` -- only the top-1 label, returned as a one-hot (N, C) row so
  that every attack and the attack contract can read it like scores; an attack
  can learn nothing from it beyond the label.

Both validate what the model returns -- a rectangular numeric array of the
right number of rows, finite scores, and the same class count on every call
(else :class:`InvalidScores`, a ValueError) -- so that NaN, inf or a model that
changed under the attack never reads as an attack's success.

Both count the inputs they evaluate (``queries``) and raise
:class:`QueryBudgetExceeded` *before* evaluating a call that would pass
``budget``. The budget counts inputs (rows), as an API bills them; an attack
run with a per-sample budget of Q on N samples needs ``N * (Q + 2)`` here (the
attack contract adds a clean forward and a final judgement per sample).

``model`` is an ``nn.Module``, a function of torch tensors, or a function of
numpy arrays (``array="numpy"``; the default "auto" picks numpy for anything
that is not an ``nn.Module``), e.g. :class:`advx.model.remote.HTTPModel`. A function
for :class:`LabelOnly` may return labels (N,) instead of scores, given
``num_classes``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["QueryBudgetExceeded", "InvalidScores", "ScoresOnly", "LabelOnly"]

log = logging.getLogger(__name__)


class QueryBudgetExceeded(RuntimeError):
    """A black-box model was asked for more inputs than its budget allows."""


class InvalidScores(ValueError):
    """A black-box model answered something that is not usable scores: NaN/inf, ragged, or a changed class count."""


class _NoGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, out: Tensor) -> Tensor:  # noqa: D102
        return out.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        raise RuntimeError(
            "this model is black-box (advx.model.blackbox) and exposes no gradients; use a score-based attack "
            "(Square, SPSA, NES, SimBA) or a decision-based one (HopSkipJump, Boundary)"
        )


class _BlackBox(nn.Module):
    def __init__(self, model: Callable[[Any], Any], budget: int | None = None, array: str = "auto"):
        super().__init__()
        if not callable(model):
            raise TypeError(f"model must be callable (an nn.Module or a function of arrays), got {type(model).__name__}")
        if budget is not None and (int(budget) != budget or budget < 0):
            raise ValueError(f"budget must be a whole number of queries >= 0 or None, got {budget!r}")
        if array not in ("auto", "torch", "numpy"):
            raise ValueError(f"array must be 'auto', 'torch' or 'numpy', got {array!r}")
        if isinstance(model, nn.Module):
            self.model = model
        else:
            self.__dict__["model"] = model  # a plain callable, not a submodule
        self.numpy = array == "numpy" or (array == "auto" and not isinstance(model, nn.Module))
        self.budget = None if budget is None else int(budget)
        self.queries = 0
        self.classes: int | None = None  #: the class count of the scores seen so far (fixed by the first call)
        self.training = bool(getattr(model, "training", False))  # an API is in eval mode; a module says itself

    @property
    def remaining(self) -> int | None:
        """Queries left before the budget is spent (None: no budget)."""
        return None if self.budget is None else self.budget - self.queries

    def reset(self) -> None:
        """Forget the queries spent so far."""
        self.queries = 0

    def _raw(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        if self.budget is not None and self.queries + n > self.budget:
            raise QueryBudgetExceeded(
                f"query budget exceeded: {self.queries} of {self.budget} inputs used, this call asks for {n} more; "
                f"raise budget= or lower the attack's queries="
            )
        self.queries += n
        with torch.no_grad():
            if self.numpy:
                raw = self.model(x.detach().cpu().numpy())
                try:
                    out = torch.as_tensor(np.asarray(raw), device=x.device)
                except (TypeError, ValueError, RuntimeError) as e:
                    raise InvalidScores(f"model must return a numeric array of scores (N, classes) or labels (N,); "
                                        f"its {type(raw).__name__} is ragged or not numeric ({str(e)[:100]})") from None
            else:
                out = self.model(x.detach())
        if not isinstance(out, Tensor) or out.dim() not in (1, 2) or out.shape[0] != n:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise InvalidScores(f"model must return scores of shape (N, classes) = ({n}, C), got {shape}")
        if out.dtype == torch.bool or out.is_complex():
            raise InvalidScores(f"model must return real numbers, got {out.dtype}")
        if out.is_floating_point() and not bool(torch.isfinite(out).all()):
            bad = ~torch.isfinite(out.reshape(n, -1)).all(1)
            raise InvalidScores(f"model returned non-finite scores (NaN or inf) for {int(bad.sum())} of {n} inputs "
                                f"(rows {bad.nonzero().flatten()[:5].tolist()}); a NaN is never an attack's success")
        if out.dim() == 2:
            if self.classes is None:
                self.classes = int(out.shape[1])
            elif out.shape[1] != self.classes:
                raise InvalidScores(f"model returned {out.shape[1]} classes, earlier calls {self.classes}: "
                                    f"the class count must not change during an attack")
        return out

    def forward(self, x: Tensor) -> Tensor:
        out = self._expose(self._raw(x), x)
        if x.requires_grad and torch.is_grad_enabled():
            return _NoGradient.apply(x, out)
        return out

    def _expose(self, out: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"budget={self.budget}, queries={self.queries}"


class ScoresOnly(_BlackBox):
    """The model's scores, counted and budgeted, without gradients.

    Args:
        model: ``nn.Module``, torch function or numpy function returning (N, C) scores.
        budget: total inputs the model may evaluate (None: unlimited).
        softmax: expose probabilities instead of the model's logits.
        array: "auto", "torch" or "numpy": what ``model`` takes and returns.
    """

    def __init__(self, model, budget: int | None = None, softmax: bool = False, array: str = "auto"):
        super().__init__(model, budget, array)
        self.softmax = bool(softmax)

    def _expose(self, out: Tensor, x: Tensor) -> Tensor:
        if out.dim() != 2:
            raise ValueError(f"model must return scores of shape (N, classes), got {tuple(out.shape)}")
        out = out.to(x.dtype)
        return out.softmax(dim=1) if self.softmax else out


class LabelOnly(_BlackBox):
    """Only the top-1 label, as a one-hot row (N, C); counted and budgeted.

    Args:
        model: returns scores (N, C) or integer labels (N,) (then give ``num_classes``).
        budget: total inputs the model may evaluate (None: unlimited).
        num_classes: needed when ``model`` returns labels.
        array: "auto", "torch" or "numpy": what ``model`` takes and returns.
    """

    def __init__(self, model, budget: int | None = None, num_classes: int | None = None, array: str = "auto"):
        super().__init__(model, budget, array)
        if num_classes is not None and int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
        self.num_classes = None if num_classes is None else int(num_classes)

    def _expose(self, out: Tensor, x: Tensor) -> Tensor:
        if out.dim() == 2:
            if self.num_classes is not None and out.shape[1] != self.num_classes:
                raise InvalidScores(f"model returned {out.shape[1]} classes, LabelOnly(num_classes={self.num_classes})")
            labels, classes = out.argmax(dim=1), out.shape[1]
        else:
            if self.num_classes is None:
                raise ValueError("model returns labels (N,); give LabelOnly(..., num_classes=C) to shape them")
            if out.is_floating_point() and not bool((out == out.round()).all()):
                raise InvalidScores("model returned labels that are not whole numbers")
            labels, classes = out.long(), self.num_classes
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
                raise InvalidScores(f"model returned labels outside [0, {classes - 1}]; check num_classes")
        return nn.functional.one_hot(labels, classes).to(x.dtype)
