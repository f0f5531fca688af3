"""Moved to :mod:`advx.model.eot` (import from ``advx.model``); this re-export goes away."""

from advx.model.eot import EOT, AdversarialPatch, BrightnessContrast, Compose, GaussianNoise, RandomAffine

__all__ = ["RandomAffine", "BrightnessContrast", "GaussianNoise", "Compose", "EOT", "AdversarialPatch"]
