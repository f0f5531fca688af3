"""What attacks see: a callable from inputs in bounds to logits, and its views.

* :mod:`~advx.model.core` -- :class:`Normalized`, the :func:`attack_mode` guard,
  :class:`QueryCounter`, :func:`input_gradient` (the one place gradients are taken);
* :mod:`~advx.model.scores` -- :func:`check_scores`, the one check of a model's answer
  (:class:`InvalidScores`, :class:`NonFiniteLogits`), used by attacks, black-box views and the remote client;
* :mod:`~advx.model.counting` -- :class:`PassCounter` (passes counted at the model) and its hard :class:`Budget`;
* :mod:`~advx.model.blackbox` -- :class:`ScoresOnly` / :class:`LabelOnly`, budgeted black-box views;
* :mod:`~advx.model.loading` -- :func:`load_model` for every model spec (zoo, files,
  ``module:function``, ``hf:``; ``mean``/``std``), :func:`check_model_fits`; :mod:`~advx.model.hf`;
* :mod:`~advx.model.remote` -- :class:`HTTPModel`, a deployed classifier behind HTTP;
* :mod:`~advx.model.eot` -- :class:`EOT` (expectation over transformation), image transforms,
  the adversarial patch.
"""

from advx.model.blackbox import LabelOnly, QueryBudgetExceeded, ScoresOnly
from advx.model.core import ModelFn, Normalized, QueryCounter, attack_mode, input_gradient
from advx.model.counting import Budget, BudgetExhausted, PassCounter
from advx.model.eot import EOT, AdversarialPatch, BrightnessContrast, Compose, GaussianNoise, RandomAffine
from advx.model.loading import check_model_fits, load_model, load_model_with_info
from advx.model.remote import HTTPModel, InvalidRemoteScores, RemoteModelError
from advx.model.scores import InvalidScores, NonFiniteLogits, check_scores

__all__ = ["Normalized", "attack_mode", "QueryCounter", "PassCounter", "Budget", "BudgetExhausted", "input_gradient", "ModelFn", "ScoresOnly", "LabelOnly",
           "QueryBudgetExceeded", "InvalidScores", "NonFiniteLogits", "check_scores", "HTTPModel", "RemoteModelError",
           "InvalidRemoteScores", "EOT", "RandomAffine", "BrightnessContrast",
           "GaussianNoise", "Compose", "AdversarialPatch", "load_model", "load_model_with_info", "check_model_fits"]
