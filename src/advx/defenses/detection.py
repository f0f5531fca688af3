"""Feature-squeezing detection of adversarial examples, and an attack that evades it.

Xu, Evans & Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep
Neural Networks", NDSS 2018 (https://arxiv.org/abs/1704.01155): the score of
an input is the largest L1 distance between the model's softmax on the input
and on each squeezed version of it (bit-depth reduction, median filter); an
input is flagged when its score exceeds a threshold chosen so that a given
fraction (the false-positive rate) of legitimate inputs is flagged.

The adaptive attack follows Carlini & Wagner, "Adversarial Examples Are Not
Easily Detected", AISec 2017 (https://arxiv.org/abs/1705.07263), section 3.2:
append a "detected" logit max_j z_j + lam * (score - threshold) to the model's
logits, so that this (K+1)-class model predicts a target class t exactly when
the model predicts t and the detector stays silent, and run a targeted attack
on it (gradients through the bit-depth squeezer by BPDA).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advx.attacks.pgd import PGD
from advx.defenses.bpda import BPDA
from advx.defenses.transforms import BitDepth, MedianFilter
from advx.model import ModelFn, attack_mode
from advx.threat import Threat

__all__ = ["FeatureSqueezingDetector", "roc_auc", "detection_rate", "DetectorAware", "evade_detector"]


class FeatureSqueezingDetector:
    """score(x) = max_k ||softmax(model(x)) - softmax(model(squeeze_k(x)))||_1 (Xu et al. 2018).

    Args:
        model: the classifier (logits).
        squeezers: input transforms; default bit depth 1 and 2x2 median filter (Xu et al.'s MNIST choice).
    """

    def __init__(self, model: ModelFn, squeezers: Sequence[nn.Module] | None = None):
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        self.model = model
        self.squeezers = list(squeezers) if squeezers is not None else [BitDepth(1), MedianFilter(2)]
        if not self.squeezers:
            raise ValueError("squeezers must name at least one transform, e.g. [BitDepth(1)]")
        self.threshold: float | None = None

    def score_differentiable(self, x: Tensor) -> Tensor:
        """The score with gradients (non-differentiable squeezers pass them through by BPDA)."""
        p = F.softmax(self.model(x), dim=1)
        scores = []
        for s in self.squeezers:
            s = s if getattr(s, "differentiable", True) else BPDA(s, s.approximation())
            scores.append((p - F.softmax(self.model(s(x)), dim=1)).abs().sum(1))
        return torch.stack(scores, 1).amax(1)

    def score(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        """(N,) detection scores in [0, 2] (higher: more likely adversarial)."""
        with attack_mode(self.model), torch.no_grad():
            return torch.cat([self.score_differentiable(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def fit(self, x_clean: Tensor, fpr: float = 0.05) -> float:
        """Set (and return) the threshold flagging a fraction ``fpr`` of ``x_clean``."""
        if not 0 < fpr < 1:
            raise ValueError(f"fpr must be in (0, 1), e.g. 0.05, got {fpr!r}")
        scores = self.score(x_clean).double()
        self.threshold = float(torch.quantile(scores, 1 - fpr, interpolation="higher"))
        return self.threshold

    def detect(self, x: Tensor) -> Tensor:
        """(N,) bool: score above the fitted threshold."""
        if self.threshold is None:
            raise ValueError("the detector has no threshold yet; call fit(x_clean, fpr=0.05) first")
        return self.score(x) > self.threshold


def roc_auc(scores_negative: Tensor, scores_positive: Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counted 1/2."""
    neg, pos = scores_negative.double().flatten().cpu(), scores_positive.double().flatten().cpu()
    if len(neg) == 0 or len(pos) == 0:
        raise ValueError(f"need scores of both classes, got {len(neg)} negatives and {len(pos)} positives")
    greater = (pos[:, None] > neg[None, :]).double().sum()
    ties = (pos[:, None] == neg[None, :]).double().sum()
    return float((greater + 0.5 * ties) / (len(neg) * len(pos)))


def detection_rate(detector: FeatureSqueezingDetector, x_adv: Tensor) -> float:
    """Fraction of ``x_adv`` the fitted detector flags."""
    return float(detector.detect(x_adv).double().mean()) if len(x_adv) else float("nan")


class DetectorAware(nn.Module):
    """K+1 logits: the model's, then max_j z_j + lam * (score - threshold) (Carlini & Wagner 2017)."""

    def __init__(self, detector: FeatureSqueezingDetector, lam: float = 1.0):
        super().__init__()
        if detector.threshold is None:
            raise ValueError("fit the detector (detector.fit(x_clean, fpr)) before attacking it")
        self.detector, self.lam = detector, float(lam)
        self.eval()
        if isinstance(detector.model, nn.Module):
            self.model = detector.model  # registered, so attack_mode freezes and restores it

    def forward(self, x: Tensor) -> Tensor:
        z = self.detector.model(x)
        score = self.detector.score_differentiable(x)
        detected = z.amax(1) + self.lam * (score - self.detector.threshold)
        return torch.cat([z, detected[:, None]], 1)


def evade_detector(detector: FeatureSqueezingDetector, x: Tensor, y: Tensor, threat: Threat, steps: int = 100,
                   lam: float = 1.0, seed: int = 0) -> Tensor:
    """Adversarial examples meant to be misclassified *and* not flagged: targeted PGD (margin loss) on
    :class:`DetectorAware` towards each input's runner-up class. Returns x_adv (judge it with the model
    and ``detector.detect``)."""
    with torch.no_grad(), attack_mode(detector.model) as m:
        z = m(x)
    target = z.scatter(1, y[:, None], -torch.inf).argmax(1)
    attack = PGD(threat, steps=steps, loss="margin", early_stop=False, seed=seed)
    return attack(DetectorAware(detector, lam), x, y, target=target).x_adv
