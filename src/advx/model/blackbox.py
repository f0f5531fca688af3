"""Black-box views of a model: scores only or the top label only, under a query budget.

A red team rarely holds the model: it holds an API. These wrappers make any
model look like one, so that an attack can be checked to use only what the API
gives:

* :class:`ScoresOnly` -- the model's scores (logits, or probabilities with
  ``softmax=True``), never a gradient: backpropagating through it raises.
* :class:`LabelOnly` -- only the top-1 label, returned as a one-hot (N, C) row so
  that every attack and the attack contract can read it like scores; an attack
  can learn nothing from it beyond the label.

Both validate what the model returns with :func:`advx.model.scores.check_scores`
-- a rectangular numeric array of the right number of rows, finite scores, and
the same class count on every call (else :class:`InvalidScores`, a ValueError;
:class:`NonFiniteLogits` for NaN/inf) -- so that NaN, inf or a model that
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

import torch
from torch import Tensor, nn

from advx.model.counting import Budget
from advx.model.scores import InvalidScores, check_scores

__all__ = ["QueryBudgetExceeded", "InvalidScores", "ScoresOnly", "LabelOnly", "Budgeted"]

log = logging.getLogger(__name__)


class QueryBudgetExceeded(RuntimeError):
    """A black-box model was asked for more inputs than its budget allows."""


class Budgeted:
    """Queries billed to an :class:`advx.model.Budget` (``self.bill``, the evaluation's hard-cap rule): a call that
    would take ``queries`` past ``budget`` raises :class:`QueryBudgetExceeded` before the model runs.

    The black-box views below and :class:`advx.audio.SphinxASR` are ``Budgeted``: each opens its bill with
    :meth:`_open_bill` and pays for a call of ``n`` inputs with :meth:`_spend` before running it.
    """

    bill: Budget

    def _open_bill(self, budget: int | None, unit: str, fix: str) -> None:
        if budget is not None and (isinstance(budget, bool) or int(budget) != budget or budget < 0):
            raise ValueError(f"budget must be a whole number of queries >= 0 or None, got {budget!r}")
        self.bill = Budget(None if budget is None else int(budget), unit=unit, error=QueryBudgetExceeded, fix=fix)

    @property
    def budget(self) -> int | None:
        """Total queries allowed (None: unlimited)."""
        return self.bill.limit

    @property
    def queries(self) -> int:
        """Queries spent so far."""
        return self.bill.spent

    @property
    def remaining(self) -> int | None:
        """Queries left before the budget is spent (None: no budget)."""
        return self.bill.left()

    def reset(self) -> None:
        """Forget the queries spent so far."""
        self.bill.reset()

    def _spend(self, n: int) -> None:
        """Pay for a call of ``n`` queries, or raise :class:`QueryBudgetExceeded` (nothing spent) if it would
        pass the budget."""
        self.bill.spend(n)


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


class _BlackBox(nn.Module, Budgeted):
    labels: bool | None = False  #: what the view takes from the model (check_scores): scores only, or labels too

    def __init__(self, model: Callable[[Any], Any], budget: int | None = None, array: str = "auto"):
        super().__init__()
        if not callable(model):
            raise TypeError(f"model must be callable (an nn.Module or a function of arrays), got {type(model).__name__}")
        if array not in ("auto", "torch", "numpy"):
            raise ValueError(f"array must be 'auto', 'torch' or 'numpy', got {array!r}")
        if isinstance(model, nn.Module):
            self.model = model
        else:
            self.__dict__["model"] = model  # a plain callable, not a submodule
        self.numpy = array == "numpy" or (array == "auto" and not isinstance(model, nn.Module))
        self._open_bill(budget, unit="inputs", fix="; raise budget= or lower the attack's queries=")
        self.classes: int | None = None  #: the class count of the scores seen so far (fixed by the first call)
        self.training = bool(getattr(model, "training", False))  # an API is in eval mode; a module says itself

    def _raw(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        self._spend(n)
        with torch.no_grad():
            out = self.model(x.detach().cpu().numpy()) if self.numpy else self.model(x.detach())
        out = check_scores(out, n, self.classes, labels=self.labels, expected=self._expected())
        if out.dim() == 2 and self.classes is None:
            self.classes = int(out.shape[1])
        return out.to(x.device)

    def _expected(self) -> str:
        """How a class-count error names where the count came from."""
        return f"earlier calls {self.classes}: the class count must not change during an attack"

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

    labels = None  # scores (N, C) or labels (N,)

    def __init__(self, model, budget: int | None = None, num_classes: int | None = None, array: str = "auto"):
        super().__init__(model, budget, array)
        if num_classes is not None and int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
        self.num_classes = self.classes = None if num_classes is None else int(num_classes)

    def _expected(self) -> str:
        if self.num_classes is not None:
            return f"LabelOnly(num_classes={self.num_classes}); check num_classes"
        return super()._expected()

    def _expose(self, out: Tensor, x: Tensor) -> Tensor:
        if out.dim() == 2:
            labels, classes = out.argmax(dim=1), out.shape[1]
        elif self.num_classes is None:
            raise ValueError("model returns labels (N,); give LabelOnly(..., num_classes=C) to shape them")
        else:  # check_scores saw whole numbers in [0, num_classes)
            labels, classes = out.long(), self.num_classes
        return nn.functional.one_hot(labels, classes).to(x.dtype)
