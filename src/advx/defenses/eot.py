"""Expectation over Transformation for randomised defenses: :class:`advx.model.EOT`, re-exported.

Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of
Security", ICML 2018 (https://arxiv.org/abs/1802.00420), section 4.3: against a
model f whose forward pass is random, attack E[f(x)]. ``EOT(defended, n)``
returns the mean over ``n`` draws run as one batch (chunks of ``max_batch``
rows); ``average="probs"`` returns log E[softmax(f)], the classifier a
randomised defense deploys when it votes by probability.
"""

from __future__ import annotations

from advx.model.eot import EOT

__all__ = ["EOT"]
