"""The one check of a model's answer (advx.model.scores.check_scores): what it refuses, with which error, and that
it passes good answers through untouched; and that the attack contract, the black-box views and the remote client
all refuse by it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from advx.attacks import PGD
from advx.attacks.base import NonFiniteLogits as BaseNonFinite
from advx.model import (
    InvalidRemoteScores,
    InvalidScores,
    LabelOnly,
    NonFiniteLogits,
    RemoteModelError,
    ScoresOnly,
    check_scores,
)
from advx.threat import Linf

shapes = st.tuples(st.integers(1, 6), st.integers(1, 5))
dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16])
finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=16)


def _tensor(shape, values, dtype):
    n, c = shape
    return torch.tensor((values * (n * c))[: n * c], dtype=dtype).reshape(n, c)


@given(shape=shapes, values=st.lists(finite, min_size=1, max_size=30), dtype=dtypes)
def test_finite_scores_of_the_right_shape_pass_through_as_the_same_tensor(shape, values, dtype):
    t = _tensor(shape, values, dtype)
    before = t.clone()
    out = check_scores(t, shape[0], shape[1])
    assert out is t and torch.equal(out, before)
    assert check_scores(t, shape[0]) is t  # any class count when none is asked for


@given(shape=shapes, values=st.lists(finite, min_size=1, max_size=30), dtype=dtypes,
       bad=st.sampled_from([math.nan, math.inf, -math.inf]), where=st.data())
def test_any_nan_or_inf_is_refused_as_non_finite_naming_the_rows(shape, values, dtype, bad, where):
    t = _tensor(shape, values, dtype)
    row = where.draw(st.integers(0, shape[0] - 1))
    t[row, where.draw(st.integers(0, shape[1] - 1))] = bad
    with pytest.raises(NonFiniteLogits, match=rf"non-finite scores \(NaN or inf\) for 1 of {shape[0]} inputs "
                                              rf"\(rows \[{row}\]\)"):
        check_scores(t, shape[0], shape[1])
    assert check_scores(t, shape[0], shape[1], finite=False) is t  # the caller marks those rows itself


@given(shape=shapes, values=st.lists(finite, min_size=1, max_size=30),
       wrong=st.sampled_from(["rows", "classes", "flat", "cube", "empty-classes"]))
def test_a_wrong_shape_is_refused_as_invalid_scores_not_as_non_finite(shape, values, wrong):
    n, c = shape
    t = _tensor(shape, values, torch.float32)
    t[0, 0] = math.nan  # the shape is judged first: a wrong shape is never reported as a NaN
    if wrong == "rows":
        call, match = (t, n + 1, c), rf"must return scores of shape \(N, classes\) = \({n + 1}, C\), got \({n}, {c}\)"
    elif wrong == "classes":
        t[0, 0] = 0.0
        call, match = (t, n, c + 1), f"returned {c} classes, expected {c + 1}"
    elif wrong == "flat":
        call, match = (t.flatten(), n * c, None), r"must return scores of shape"
    elif wrong == "cube":
        call, match = (t[:, :, None], n, None), r"must return scores of shape"
    else:
        call, match = (t[:, :0], n, None), r"must return scores of shape"
    with pytest.raises(InvalidScores, match=match) as info:
        check_scores(*call)
    assert not isinstance(info.value, NonFiniteLogits)


def test_array_answers_are_converted_and_bad_ones_named():
    out = check_scores(np.array([[1.0, 2.0], [3.0, 4.0]]), 2)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.tolist() == [[1, 2], [3, 4]]
    assert check_scores([[1, 2]], 1).dtype == torch.int64
    with pytest.raises(InvalidScores, match="not a rectangular array of numbers .ragged or not numeric"):
        check_scores([[1.0, 2.0], [3.0]], 2)
    with pytest.raises(InvalidScores, match="not a rectangular array"):
        check_scores([["a", "b"]], 1)
    with pytest.raises(InvalidScores, match="as a torch.Tensor"):
        check_scores(np.zeros((1, 2)), 1, convert=False)
    with pytest.raises(InvalidScores, match="real numbers"):
        check_scores(torch.zeros(2, 3, dtype=torch.bool), 2)
    with pytest.raises(InvalidScores, match="real numbers"):
        check_scores(torch.zeros(2, 3, dtype=torch.complex64), 2)


def test_labels_are_whole_class_indices_in_range():
    labels = torch.tensor([0.0, 2.0, 1.0])
    assert check_scores(labels, 3, 3, labels=True) is labels
    assert check_scores(labels, 3, labels=None) is labels
    with pytest.raises(InvalidScores, match=r"scores of shape \(N, classes\) = \(3, C\), got \(3,\)"):
        check_scores(labels, 3)  # scores only by default
    with pytest.raises(InvalidScores, match=r"labels of shape \(N,\) = \(3,\), got \(3, 2\)"):
        check_scores(torch.zeros(3, 2), 3, what="labels", labels=True)
    with pytest.raises(InvalidScores, match="whole numbers"):
        check_scores(torch.tensor([0.5, 1.0]), 2, labels=True)
    with pytest.raises(InvalidScores, match=r"outside \[0, 2\]"):
        check_scores(torch.tensor([0, 3]), 2, 3, labels=True)
    with pytest.raises(InvalidScores, match=">= 0"):
        check_scores(torch.tensor([-1, 0]), 2, labels=True)


def test_the_hierarchy_keeps_every_old_except_clause_working():
    assert issubclass(NonFiniteLogits, InvalidScores) and issubclass(InvalidScores, ValueError)
    assert BaseNonFinite is NonFiniteLogits  # advx.attacks.base.NonFiniteLogits is the same class
    assert issubclass(InvalidRemoteScores, RemoteModelError) and issubclass(InvalidRemoteScores, InvalidScores)
    assert issubclass(RemoteModelError, RuntimeError) and not issubclass(RemoteModelError, ValueError)


def test_the_attack_the_views_and_the_remote_client_refuse_by_the_same_rule():
    """The same NaN answer is a NonFiniteLogits at the attack and at the views; a ragged one the same message."""
    x, y = torch.rand(2, 4), torch.tensor([0, 1])

    def nan_model(z):
        out = z[:, :3] * 1.0
        return out.masked_fill(torch.arange(len(z))[:, None] == 1, math.nan)

    with pytest.raises(NonFiniteLogits, match=r"for 1 of 2 inputs \(rows \[1\]\)"):
        PGD(Linf(0.1), steps=1)(nan_model, x, y)
    with pytest.raises(NonFiniteLogits, match=r"for 1 of 2 inputs \(rows \[1\]\)"):
        ScoresOnly(nan_model, array="torch")(x)
    with pytest.raises(NonFiniteLogits, match=r"for 1 of 2 inputs \(rows \[1\]\)"):
        LabelOnly(nan_model, array="torch")(x)
    with pytest.raises(InvalidScores, match="ragged or not numeric"):
        ScoresOnly(lambda a: [[1.0, 2.0], [3.0]])(x)


@settings(max_examples=10)
@given(n=st.integers(1, 4), classes=st.integers(2, 5))
def test_a_label_only_view_keeps_num_classes_and_the_first_calls_count(n, classes):
    x = torch.zeros(n, 3)
    view = LabelOnly(lambda a: np.zeros((len(a), classes + 1)), num_classes=classes)
    with pytest.raises(InvalidScores, match=f"returned {classes + 1} classes, LabelOnly.num_classes={classes}"):
        view(x)
    grows = iter(range(classes, classes + 2))
    view = ScoresOnly(lambda a: np.zeros((len(a), next(grows))))
    assert view(x).shape == (n, classes) and view.classes == classes
    with pytest.raises(InvalidScores, match=f"{classes + 1} classes, earlier calls {classes}"):
        view(x)
