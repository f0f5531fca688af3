"""Worst-case robust accuracy over an attack ensemble: ``advx.evaluate``.

The protocol of AutoAttack (Croce & Hein, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks", ICML 2020,
https://arxiv.org/abs/2003.01690): a point counts as robust at eps only if the
model classifies it correctly and *every* attack of the ensemble fails on it;
each later attack runs only on the points still robust. Per batch:

1. clean forward; misclassified points are never attacked;
2. for each attack, for each eps (each evaluated independently): attack the
   points still robust; a minimum-norm attack runs once per norm at the largest
   eps and its examples are re-judged (projected, one forward) at every eps;
3. a stronger attack probes a few surviving points per eps (convergence check);
   what it breaks is counted;
4. check evidence (gradients, randomness, probabilities, unbounded attack).

Batches draw all randomness from seeds derived from (seed, batch, eps, attack),
so checkpoint/resume and torchrun sharding reproduce the same numbers. When the
report is built, an example found at a smaller eps (same norm) also breaks the
point at every larger eps ("carried"): the ball only grows.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate"]


def evaluate(model, data, threat, *args: Any, **kwargs: Any):
    """``advx.evaluate``: see :func:`advx.jobs.evaluate.evaluate` (its batch loop is the job pipeline's)."""
    from advx.jobs.evaluate import evaluate as run  # noqa: PLC0415 -- the job layer sits above this one

    return run(model, data, threat, *args, **kwargs)


def __getattr__(name: str):
    if name in ("_data", "_threats"):
        from advx.jobs import evaluate as job  # noqa: PLC0415

        return getattr(job, name)
    raise AttributeError(name)
