"""Counting passes at the model: the counter every measured cost is read from.

:class:`PassCounter` wraps a model and counts every sample that goes through it
forwards and every sample a gradient flows back through (one per backward call
through the output, so a C-class Jacobian of one sample counts C). It counts at
the model, not from the attacks' own bookkeeping, so any two evaluations
(advx's presets, another library's AutoAttack) are compared by the same rule,
and the attack contract checks each attack's declared ``result.queries``
against it. (That bookkeeping is :class:`advx.model.QueryCounter`: a per-sample
ledger an attack writes through its context; this counter measures what the
model was actually asked.)

:class:`Budget` is the hard limit behind ``evaluate(..., budget=PASSES)``: a
running total of the passes the ensemble has spent; once it is reached no
further attack is started, and the report says which points and attacks were
not run.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["PassCounter", "Budget", "BudgetExhausted"]


class BudgetExhausted(RuntimeError):
    """A model call would take the evaluation past its ``budget`` of passes."""


class PassCounter(nn.Module):
    """``model`` with counts of the samples passed forwards and backwards through it.

    ``passes_per_call``: model passes one sample of a call costs (an EOT wrapper over N draws: N).
    ``budget``: a shared :class:`Budget`; a call that could take it past its limit (forward, and a backward
    where the input requires a gradient) raises :class:`BudgetExhausted` before it runs.
    """

    def __init__(self, model, passes_per_call: int = 1, budget: Budget | None = None):
        super().__init__()
        self.model = model
        self.per_call = int(passes_per_call)
        self.budget = budget
        self.forwards = 0
        self.backwards = 0
        #: wall seconds inside the model: its forwards, and its backwards from the output's gradient to the
        #: input's (where the input is what is differentiated): the floor the bookkeeping is compared with
        self.seconds = 0.0
        self.training = bool(getattr(model, "training", False))  # mirror the model (attack_mode restores it)

    @property
    def passes(self) -> int:
        """Forward plus backward samples."""
        return self.forwards + self.backwards

    def reset(self) -> None:
        self.forwards = self.backwards = 0
        self.seconds = 0.0

    def forward(self, x: Tensor) -> Tensor:
        n = int(x.shape[0]) * self.per_call
        grad = x.requires_grad and torch.is_grad_enabled()
        budget = self.budget
        if budget is not None:
            budget.reserve(2 * n if grad else n)
        t0 = time.perf_counter()
        out = self.model(x)
        self.seconds += time.perf_counter() - t0
        self.forwards += n
        if budget is not None:
            budget.charge(n)
        if out.requires_grad:
            began: list[float] = []

            def hook(g: Tensor) -> None:
                self.backwards += n
                if budget is not None:
                    budget.charge(n)
                began.append(time.perf_counter())

            out.register_hook(hook)
            if x.requires_grad:  # the gradient reaching the input ends the backward through the model
                def arrived(g: Tensor) -> None:
                    if began:
                        self.seconds += time.perf_counter() - began.pop()

                x.register_hook(arrived)
        return out


@dataclass
class Budget:
    """A hard cap on model passes (forward + backward samples); ``limit`` None: no cap.

    ``exempt`` (a counter of open :meth:`free` blocks) lets the clean forward of a batch through: it is
    counted but never refused (it decides which points there are to attack). ``unit``, ``error`` and ``fix``
    say what is counted and what :meth:`reserve` raises; the black-box views (:mod:`advx.model.blackbox`)
    count their queries by the same rule.
    """

    limit: int | None
    spent: int = 0
    hit: bool = False  #: a call was refused
    exempt: int = 0
    unit: str = "model passes"  #: what is counted (for the message)
    error: type[Exception] = BudgetExhausted  #: what a refused call raises
    fix: str = ""  #: appended to the message: how to get more

    @property
    def exhausted(self) -> bool:
        return self.hit or (self.limit is not None and self.spent >= self.limit)

    def left(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.spent, 0)

    def reserve(self, passes: int) -> None:
        if self.limit is not None and not self.exempt and self.spent + passes > self.limit:
            self.hit = True
            raise self.error(f"budget exceeded: {self.spent:,} of {self.limit:,} {self.unit} used, this call asks "
                             f"for {passes:,} more{self.fix}")

    def charge(self, passes: int) -> None:
        self.spent += int(passes)

    def spend(self, passes: int) -> None:
        """:meth:`reserve` then :meth:`charge`: pay for a call before it runs (nothing is spent if refused)."""
        self.reserve(passes)
        self.charge(passes)

    def reset(self) -> None:
        """Start the count again (the limit stays)."""
        self.spent, self.hit = 0, False

    @contextmanager
    def free(self):
        self.exempt += 1
        try:
            yield
        finally:
            self.exempt -= 1
