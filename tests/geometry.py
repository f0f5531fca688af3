"""Closed-form answers for a linear multiclass model (logits = W x + b).

With a box that never binds, the smallest perturbation in norm p that makes
class j beat the true class y is (z_y - z_j) / ||w_y - w_j||_q, q the dual norm
of p (Linf <-> L1, L2 <-> L2, L1 <-> Linf); the minimal adversarial distance is
the minimum over j != y.
"""

from __future__ import annotations

import torch

DUAL = {"linf": 1.0, "l2": 2.0, "l1": float("inf")}


def exact_min_distance(model, x: torch.Tensor, y: torch.Tensor, norm: str) -> torch.Tensor:
    w, b = model.linear.weight.detach(), model.linear.bias.detach()
    z = x.flatten(1) @ w.T + b
    zy = z.gather(1, y[:, None])
    diff = w[y][:, None, :] - w[None, :, :]  # (N, C, D): w_y - w_j
    dist = (zy - z) / diff.norm(p=DUAL[norm], dim=2).clamp_min(1e-12)
    dist = dist.scatter(1, y[:, None], float("inf"))
    return dist.min(dim=1).values
