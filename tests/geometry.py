"""Closed-form answers for a linear multiclass model (logits = W x + b).

With a box that never binds, the smallest perturbation in norm p that makes
class j beat the true class y is (z_y - z_j) / ||w_y - w_j||_q, q the dual norm
of p (Linf <-> L1, L2 <-> L2, L1 <-> Linf); the minimal adversarial distance is
the minimum over j != y. ``model`` is anything with a ``linear`` layer
(``tests.helpers.LinearModel``); ``norm`` is "linf", "l2", "l1", a threat class
(``Linf``, ``L2``, ``L1``) or p (``float("inf")``, 2, 1).
"""

from __future__ import annotations

import torch

DUAL = {"linf": 1.0, "l2": 2.0, "l1": float("inf")}


def _dual(norm) -> float:
    if isinstance(norm, type):
        norm = norm.__name__
    if isinstance(norm, str):
        return DUAL[norm.lower()]
    return {float("inf"): 1.0, 2.0: 2.0, 1.0: float("inf")}[float(norm)]


def boundary_norms(model, y: torch.Tensor, norm) -> torch.Tensor:
    """(N, C) float64: ||w_y - w_j||_dual, the rate at which the gap z_y - z_j moves per unit of ``norm``."""
    w = model.linear.weight.detach().double()
    return (w[y][:, None, :] - w[None, :, :]).norm(p=_dual(norm), dim=2)


def halfspace_distances(model, x: torch.Tensor, y: torch.Tensor, norm) -> torch.Tensor:
    """(N, C) float64: the distance in ``norm`` from x to the half-space {z_j >= z_y}; inf at j = y."""
    w, b = model.linear.weight.detach().double(), model.linear.bias.detach().double()
    z = x.flatten(1).double() @ w.T + b
    d = (z.gather(1, y[:, None]) - z) / boundary_norms(model, y, norm)
    return d.masked_fill(torch.nn.functional.one_hot(y, z.shape[1]).bool(), float("inf"))


def exact_min_distance(model, x: torch.Tensor, y: torch.Tensor, norm) -> torch.Tensor:
    """(N,) in x's dtype: the minimal adversarial distance of each (x, y)."""
    return halfspace_distances(model, x, y, norm).min(1).values.to(x.dtype)


def exact_distance(model, x: torch.Tensor, norm, target: torch.Tensor | None = None) -> torch.Tensor:
    """Like :func:`exact_min_distance` with y the model's prediction; only to class ``target`` if given."""
    with torch.no_grad():
        y = model(x).argmax(1)
    d = halfspace_distances(model, x, y, norm)
    if target is not None:
        return d.gather(1, target[:, None]).squeeze(1).to(x.dtype)
    return d.min(1).values.to(x.dtype)
