"""Fast Gradient Sign Method and its other-norm siblings.

Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples",
ICLR 2015 (https://arxiv.org/abs/1412.6572). One step of size eps along the
threat's steepest-ascent direction: sign(grad) for Linf (FGSM), grad/||grad||_2
for L2 (the "fast gradient method", FGM), a sparse sign step for L1.
Targeted: one step down the loss of the target class.
"""

from __future__ import annotations

from torch import Tensor

from advx.attacks.base import Attack, AttackContext, in_range
from advx.attacks.losses import LossFn, get_loss
from advx.attacks.registry import register
from advx.threat import Threat

__all__ = ["FGSM", "FGM"]


@register("fgsm", threats=("linf", "l2", "l1", "l0", "db"), kind="gradient",
          summary="one gradient step of size eps (Goodfellow et al. 2015, arXiv:1412.6572)")
@register("fgm", threats=("l2",), kind="gradient",
          summary="fast gradient method: one L2-normalised gradient step (Goodfellow et al. 2015)")
class FGSM(Attack):
    """One gradient step of size eps (Goodfellow et al. 2015).

    ``random_start=True`` gives the "FGSM with random start" of Wong et al. (2020):
    a uniform point of the ball, then one step of ``rel_step_size * eps``.
    """

    def __init__(self, threat: Threat, loss: str | LossFn = "ce", random_start: bool = False,
                 rel_step_size: float | None = None, seed: int = 0):
        super().__init__(threat, seed)
        self.loss = get_loss(loss)
        self.random_start = bool(random_start)
        self.rel_step_size = (1.25 if random_start else 1.0) if rel_step_size is None else \
            in_range("rel_step_size", rel_step_size, 0, low_open=True)

    def run(self, ctx: AttackContext) -> Tensor:
        x = ctx.x
        start = self.threat.random_start(x, ctx.generator) if self.random_start else x
        y, target = ctx.labels()
        _, grad, _ = ctx.gradient(start, lambda z: self.loss(z, y, target))
        size = (self.rel_step_size * self.threat.radius(x)).reshape(-1, *([1] * (x.dim() - 1)))
        return self.threat.project(start + size * self.threat.step(grad, start), x)


FGM = FGSM  #: the same attack; with an L2 threat it is the "fast gradient method"
