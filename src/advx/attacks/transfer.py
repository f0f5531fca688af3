"""Transfer attacks: craft on a surrogate, fool a model you cannot see.

* MI-FGSM -- Dong, Liao, Pang, Su, Zhu, Hu & Li, "Boosting Adversarial Attacks
  with Momentum", CVPR 2018 (https://arxiv.org/abs/1710.06081):
  g <- mu g + grad / ||grad||_1, x <- project(x + alpha step(g)), alpha = eps / T.
  An ensemble of surrogates is attacked through its averaged logits (Sec. 3.2):
  :class:`Ensemble`.
* DI-FGSM -- Xie, Zhang, Zhou, Bai, Wang, Ren & Yuille, "Improving
  Transferability of Adversarial Examples with Input Diversity", CVPR 2019
  (https://arxiv.org/abs/1803.06978): with probability p the gradient is taken
  through T(x), a random resize to rnd in [H, r H) and a random zero padding to
  r H. The padded image is resized back to H x W so that models with a fixed
  input size take it (the paper feeds the larger image to nets with global pooling).
* TI-FGSM -- Dong, Pang, Su & Zhu, "Evading Defenses to Transferable
  Adversarial Examples by Translation-Invariant Attacks", CVPR 2019
  (https://arxiv.org/abs/1904.02884): the gradient is convolved with a Gaussian
  kernel W (size k, spanning +-3 sigma: sigma = (k - 1) / 6) before the
  momentum update, approximating the gradient over translated images.

All three are one class, :class:`MIFGSM`, with ``diversity_prob`` and
``kernel_size``; :func:`DIFGSM` and :func:`TIFGSM` set the papers' defaults.
There is no early stopping: succeeding on the surrogate early does not mean
transferring, so every sample takes all ``steps``. :func:`transfer_matrix`
evaluates crafted examples on every target model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advx.attacks.base import Attack, AttackContext, in_range, positive_int
from advx.attacks.losses import LossFn, get_loss
from advx.attacks.registry import register
from advx.model import attack_mode, input_gradient
from advx.threat import Threat, per_sample

__all__ = ["MIFGSM", "DIFGSM", "TIFGSM", "Ensemble", "gaussian_kernel", "transfer_matrix"]


def gaussian_kernel(size: int, sigma: float | None = None) -> Tensor:
    """Normalised 2-D Gaussian (size, size); sigma defaults to (size - 1) / 6 (the kernel spans +-3 sigma)."""
    if int(size) < 1 or int(size) % 2 == 0:
        raise ValueError(f"kernel_size must be an odd number >= 1, got {size!r}")
    sigma = max((size - 1) / 6, 1e-6) if sigma is None else float(sigma)
    r = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    k = g[:, None] * g[None, :]
    return k / k.sum()


class Ensemble(nn.Module):
    """Averaged logits of several models (with optional weights): one surrogate."""

    def __init__(self, models: Sequence[nn.Module], weights: Sequence[float] | None = None):
        super().__init__()
        if len(models) == 0:
            raise ValueError("models must hold at least one model")
        if weights is not None and len(weights) != len(models):
            raise ValueError(f"weights must have one value per model ({len(models)}), got {len(weights)}")
        self.members = nn.ModuleList(models)
        w = torch.full((len(models),), 1.0 / len(models)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        self.register_buffer("weights", w / w.sum())

    def forward(self, x: Tensor) -> Tensor:
        return sum(w * m(x) for w, m in zip(self.weights, self.members))


@register("mifgsm", threats=("linf", "l2"), kind="transfer", budget=("steps",),
          summary="momentum iterative FGSM, crafted on a surrogate (Dong et al. 2018, arXiv:1710.06081)")
class MIFGSM(Attack):
    """Momentum iterative FGSM with optional input diversity (DI) and translation invariance (TI).

    Args:
        threat: where the adversary may move (Linf as in the papers; L2 steps along g / ||g||_2).
        steps: iterations T; step alpha = rel_step_size * eps (default 1 / T).
        decay: momentum mu.
        diversity_prob: probability p of taking the gradient through a random resize-and-pad (DI).
        resize_rate: the padded size over the input size for DI (the paper's 330 / 299 = 1.1).
        kernel_size: odd size of the Gaussian kernel that smooths the gradient (TI; 1 disables it).
        loss: "ce" (as in the papers), "margin", "dlr" or a callable; maximised.
    """

    def __init__(self, threat: Threat, steps: int = 10, decay: float = 1.0, diversity_prob: float = 0.0,
                 resize_rate: float = 1.1, kernel_size: int = 1, rel_step_size: float | None = None,
                 loss: str | LossFn = "ce", seed: int = 0):
        super().__init__(threat, seed)
        self.steps, self.decay = positive_int("steps", steps), in_range("decay", decay, 0)
        self.diversity_prob = in_range("diversity_prob", diversity_prob, 0, 1)
        self.resize_rate = in_range("resize_rate", resize_rate, 1, low_open=True)
        self.kernel_size = positive_int("kernel_size", kernel_size, note=" (odd; 1 disables TI)")
        self.kernel = gaussian_kernel(self.kernel_size) if self.kernel_size > 1 else None
        self.rel_step_size = 1.0 / self.steps if rel_step_size is None else \
            in_range("rel_step_size", rel_step_size, 0, low_open=True)
        self.loss = get_loss(loss)

    def _diverse(self, x: Tensor, g: torch.Generator) -> Tensor:
        """DI transform: with probability p, resize to rnd in [H, rH), zero-pad to rH, resize back."""
        if self.diversity_prob == 0 or float(torch.rand((), generator=g, device=g.device)) >= self.diversity_prob:
            return x
        h, w = x.shape[-2:]
        big_h, big_w = max(int(h * self.resize_rate), h + 1), max(int(w * self.resize_rate), w + 1)
        rnd = int(torch.randint(h, big_h, (), generator=g, device=g.device))
        rnd_w = max(1, round(rnd * w / h))
        small = F.interpolate(x, size=(rnd, min(rnd_w, big_w - 1)), mode="nearest")
        top = int(torch.randint(0, big_h - small.shape[-2] + 1, (), generator=g, device=g.device))
        left = int(torch.randint(0, big_w - small.shape[-1] + 1, (), generator=g, device=g.device))
        padded = F.pad(small, (left, big_w - small.shape[-1] - left, top, big_h - small.shape[-2] - top))
        return F.interpolate(padded, size=(h, w), mode="nearest")

    def _smooth(self, grad: Tensor) -> Tensor:
        if self.kernel is None:
            return grad
        c = grad.shape[1]
        k = self.kernel.to(grad)[None, None].expand(c, 1, -1, -1)
        return F.conv2d(grad, k, padding=self.kernel_size // 2, groups=c)

    def run(self, ctx: AttackContext) -> Tensor:
        x, threat, g = ctx.x, self.threat, ctx.generator
        if (self.diversity_prob > 0 or self.kernel is not None) and x.dim() != 4:
            raise ValueError(f"x: DI and TI work on images (N, C, H, W), got shape {tuple(x.shape)}")
        y, target = ctx.labels()
        alpha = per_sample(self.rel_step_size * threat.radius(x), x)
        x_adv, momentum = x.clone(), torch.zeros_like(x)
        every = torch.arange(len(x), device=x.device)
        for _ in range(self.steps):
            ctx.counter.add(every, forwards=1, backwards=1)  # one forward and backward through T(x)
            _, grad, _ = input_gradient(lambda z: ctx.model(self._diverse(z, g)), x_adv,
                                        lambda logits: self.loss(logits, y, target))
            grad = self._smooth(grad)
            momentum = self.decay * momentum + grad / per_sample(grad.abs().flatten(1).sum(1).clamp_min(1e-12), grad)
            x_adv = threat.project(x_adv + alpha * threat.step(momentum, x_adv), x)
        return x_adv


@register("difgsm", threats=("linf", "l2"), kind="transfer", budget=("steps",),
          summary="MI-FGSM through random resize-and-pad, input diversity (Xie et al. 2019, arXiv:1803.06978)")
class DIFGSM(MIFGSM):
    """DI-FGSM (Xie et al. 2019) on MI-FGSM: p = 0.5, as in the paper's M-DI2-FGSM."""

    def __init__(self, threat: Threat, steps: int = 10, decay: float = 1.0, diversity_prob: float = 0.5,
                 resize_rate: float = 1.1, kernel_size: int = 1, rel_step_size: float | None = None,
                 loss: str | LossFn = "ce", seed: int = 0):
        super().__init__(threat, steps=steps, decay=decay, diversity_prob=diversity_prob, resize_rate=resize_rate,
                         kernel_size=kernel_size, rel_step_size=rel_step_size, loss=loss, seed=seed)


@register("tifgsm", threats=("linf", "l2"), kind="transfer", budget=("steps",),
          summary="translation-invariant DI-MI-FGSM, smoothed gradient (Dong et al. 2019, arXiv:1904.02884)")
class TIFGSM(MIFGSM):
    """TI-DIM (Dong et al. 2019): a Gaussian-smoothed gradient on DI-MI-FGSM.

    The paper's kernel is 15 for 299-pixel images; 7 suits 28-32 pixel ones.
    """

    def __init__(self, threat: Threat, steps: int = 10, decay: float = 1.0, kernel_size: int = 7,
                 diversity_prob: float = 0.5, resize_rate: float = 1.1, rel_step_size: float | None = None,
                 loss: str | LossFn = "ce", seed: int = 0):
        super().__init__(threat, steps=steps, decay=decay, diversity_prob=diversity_prob, resize_rate=resize_rate,
                         kernel_size=kernel_size, rel_step_size=rel_step_size, loss=loss, seed=seed)


@torch.no_grad()
def transfer_matrix(attack: Attack, sources: Mapping[str, nn.Module], targets: Mapping[str, nn.Module],
                    x: Tensor, y: Tensor, batch_size: int = 256) -> dict:
    """Success rates of ``attack`` crafted on each source and evaluated on each target.

    The rate for (source, target) is the fraction of the samples the target
    classifies correctly on clean inputs that it misclassifies after the
    attack (untargeted). Returns ``{"sources", "targets", "success" (S, T)
    tensor, "clean_accuracy" (T,) tensor, "n" (T,) tensor of samples counted}``.
    """
    if not sources or not targets:
        raise ValueError("sources and targets must each name at least one model")
    clean_right = {}
    for name, model in targets.items():
        with attack_mode(model) as m:
            clean_right[name] = torch.cat([m(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]
                                           for i in range(0, len(x), batch_size)])
    rates = torch.zeros(len(sources), len(targets))
    for i, source in enumerate(sources.values()):
        with torch.enable_grad():
            x_adv = torch.cat([attack(source, x[k:k + batch_size], y[k:k + batch_size]).x_adv
                               for k in range(0, len(x), batch_size)])
        for j, (name, model) in enumerate(targets.items()):
            with attack_mode(model) as m:
                fooled = torch.cat([m(x_adv[k:k + batch_size]).argmax(1) != y[k:k + batch_size]
                                    for k in range(0, len(x), batch_size)])
            right = clean_right[name]
            rates[i, j] = (fooled & right).sum() / right.sum().clamp_min(1)
    return {
        "sources": list(sources), "targets": list(targets), "success": rates,
        "clean_accuracy": torch.stack([clean_right[t].float().mean() for t in targets]),
        "n": torch.stack([clean_right[t].sum() for t in targets]),
    }
