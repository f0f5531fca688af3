"""The one check of what a model answers: scores (N, classes), or labels (N,).

Every place that takes a model's output on trust -- the attack contract
(:class:`advx.attacks.Attack`), the black-box views (:class:`~advx.model.ScoresOnly`,
:class:`~advx.model.LabelOnly`) and the remote client (:class:`~advx.model.HTTPModel`)
-- runs it through :func:`check_scores`, so that NaN, inf, a ragged or
non-numeric answer, the wrong number of rows or a class count that changes
under an attack is refused by one rule, and never read as an attack's success.

Errors: :class:`InvalidScores` (a ValueError); :class:`NonFiniteLogits`, its
subclass, for NaN or inf. The remote client raises them as
:class:`advx.model.remote.InvalidRemoteScores`, which is also its
:class:`~advx.model.RemoteModelError`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["InvalidScores", "NonFiniteLogits", "check_scores"]


class InvalidScores(ValueError):
    """A model answered something that is not usable scores: NaN/inf, ragged, the wrong shape, a changed class count."""


class NonFiniteLogits(InvalidScores):
    """The model returned NaN or inf scores; advx never counts them as success."""


def check_scores(scores: Any, n: int, classes: int | None = None, *, where: str = "model", what: str = "scores",
                 labels: bool | None = False, finite: bool = True, convert: bool = True,
                 expected: str | None = None, hint: str = "") -> Tensor:
    """``scores`` as a tensor, checked to be ``n`` rows of real scores (or labels); else :class:`InvalidScores`.

    Args:
        scores: what the model returned: a tensor (returned as it is, the same object, when it passes),
            or an array-like (a numpy array, nested lists), converted with ``torch.as_tensor``.
        n: the number of inputs the model was given: the rows it must answer.
        classes: the class count the answer must have (``(n, classes)`` scores; labels in ``[0, classes)``);
            None: any.
        where: the subject of the messages, naming the argument or source (``"model"``, ``"<url>: the server"``).
        what: what the answer is called in the messages (``"scores"``, ``"logits"``, ``"labels"``).
        labels: False: scores (n, C) only; True: labels (n,) only; None: either.
        finite: refuse NaN and inf (:class:`NonFiniteLogits`); False lets the caller mark those rows itself.
        convert: take array-likes (a numpy function's answer); False: only a tensor is an answer.
        expected: what the message says after "returned K classes, ": where ``classes`` came from and the
            fix (e.g. ``"earlier calls 3: the class count must not change during an attack"``);
            default ``"expected <classes>"``.
        hint: appended to the non-finite message (e.g. how to mark such samples failed instead).
    """
    if not isinstance(scores, Tensor):
        if not convert:
            raise InvalidScores(f"{where} must return {what} as a torch.Tensor (N, classes) = ({n}, C), "
                                f"got {type(scores).__name__}")
        try:
            scores = torch.as_tensor(np.asarray(scores))
        except (TypeError, ValueError, RuntimeError) as e:
            raise InvalidScores(f"{where} returned {what} that are not a rectangular array of numbers (ragged or "
                                f"not numeric: {type(scores).__name__}, {str(e)[:100]})") from None
    if scores.dtype == torch.bool or scores.is_complex():
        raise InvalidScores(f"{where} must return real numbers, got {what} of dtype {scores.dtype}")
    dims = {False: (2,), True: (1,), None: (1, 2)}[labels]
    if scores.dim() not in dims or scores.shape[0] != n or (scores.dim() == 2 and scores.shape[1] < 1):
        want = " or ".join([f"(N, classes) = ({n}, C)"] * (2 in dims) + [f"(N,) = ({n},)"] * (1 in dims))
        raise InvalidScores(f"{where} must return {what} of shape {want}, got {tuple(scores.shape)}")
    # a finite sum means every score is finite (a NaN or inf makes it NaN or inf): one reduction, one sync; a sum
    # that overflows is looked at element by element
    if finite and scores.is_floating_point() and not math.isfinite(float(scores.detach().sum())):
        ok = torch.isfinite(scores.detach())
        if not bool(ok.all()):
            bad = ~ok.reshape(n, -1).all(1)
            raise NonFiniteLogits(f"{where} returned non-finite {what} (NaN or inf) for {int(bad.sum())} of {n} "
                                  f"inputs (rows {bad.nonzero().flatten()[:5].tolist()}); advx never counts NaN as "
                                  f"success{hint}")
    if scores.dim() == 2:
        if classes is not None and scores.shape[1] != classes:
            raise InvalidScores(f"{where} returned {scores.shape[1]} classes, {expected or f'expected {classes}'}")
        return scores
    if scores.is_floating_point() and not bool((scores == scores.round()).all()):
        raise InvalidScores(f"{where} returned labels that are not whole numbers")
    if n and (int(scores.min()) < 0 or (classes is not None and int(scores.max()) >= classes)):
        span = f"[0, {classes - 1}]; check num_classes" if classes is not None else ">= 0 (class indices)"
        raise InvalidScores(f"{where} returned labels outside {span}")
    return scores
