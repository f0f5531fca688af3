"""Defenses, and the adaptive attacks that test them honestly.

* :mod:`~advx.defenses.training` -- adversarial training objectives for ``advx train --defense``:
  PGD-AT (Madry et al. 2018), FGSM-RS with the catastrophic-overfitting guard (Wong et al. 2020),
  TRADES (Zhang et al. 2019), Gaussian-noise augmentation.
* :mod:`~advx.defenses.distillation` -- defensive distillation (Papernot et al. 2016), which masks gradients.
* :mod:`~advx.defenses.transforms` -- bit depth, median filter, JPEG, Gaussian noise as model wrappers.
* :mod:`~advx.defenses.bpda`, :mod:`~advx.defenses.eot` -- adaptive attacks through them (Athalye et al. 2018).
* :mod:`~advx.defenses.detection` -- the feature-squeezing detector (Xu et al. 2018) and its evasion.
* :mod:`~advx.defenses.smoothing` -- randomized smoothing certificates (Cohen et al. 2019);
  :mod:`~advx.defenses.certification_run` -- a certification run's numbers (the run itself: ``advx.jobs.certify``).
"""

from advx.defenses.bpda import BPDA, bpda
from advx.defenses.certification_run import certify_results, max_certifiable_radius
from advx.defenses.detection import DetectorAware, FeatureSqueezingDetector, detection_rate, evade_detector, roc_auc
from advx.defenses.distillation import DistillationTraining, TemperatureTraining, distill
from advx.defenses.eot import EOT
from advx.defenses.smoothing import ABSTAIN, Certificate, certified_accuracy, certify, predict, sample_counts
from advx.defenses.training import TRADES, FGSMRSTraining, NoiseTraining, OverfitGuard, PGDTraining, RobustAccuracy
from advx.defenses.transforms import (
    JPEG,
    BitDepth,
    Defended,
    GaussianNoise,
    InputTransform,
    MedianFilter,
    parse_transforms,
)

__all__ = ["PGDTraining", "FGSMRSTraining", "TRADES", "NoiseTraining", "OverfitGuard", "TemperatureTraining",
           "DistillationTraining", "distill", "InputTransform", "BitDepth", "MedianFilter", "JPEG", "GaussianNoise",
           "Defended", "BPDA", "bpda", "EOT", "FeatureSqueezingDetector", "roc_auc", "detection_rate",
           "DetectorAware", "evade_detector", "ABSTAIN", "Certificate", "sample_counts", "certify", "predict",
           "certified_accuracy", "certify_results", "max_certifiable_radius", "RobustAccuracy", "parse_transforms"]
