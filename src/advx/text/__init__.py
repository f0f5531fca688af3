"""Adversarial examples for text classifiers (discrete character and word edits).

>>> from advx.text import load_reference, load_text_dataset, DeepWordBug, summarize
>>> clf, meta = load_reference("tweets-wordcnn")
>>> data = load_text_dataset("tweets", "test").subset(20)
>>> results = DeepWordBug(query_budget=500)(clf, data.texts, data.labels)
>>> summarize(results)["success_rate"]  # doctest: +SKIP

See docs/text.md.
"""

from advx.text.attacks import GCG, PWWS, DeepWordBug, Edit, HotFlip, TextAttack, TextAttackResult, TextFooler, summarize
from advx.text.classifier import CallableClassifier, TextClassifier, TorchTextClassifier, as_classifier
from advx.text.constraints import (
    Constraint,
    Constraints,
    LevenshteinBudget,
    MaxCharsChanged,
    MaxWordsChanged,
    MinSentenceSimilarity,
    StopwordsKept,
)
from advx.text.data import TextDataset, load_bbc, load_text_dataset, load_tweets
from advx.text.recipes import RECIPES, make_attack
from advx.text.words import Words
from advx.text.zoo import ZOO, load_reference, resolve_model

__all__ = [
    "TextClassifier", "CallableClassifier", "TorchTextClassifier", "as_classifier",
    "TextAttack", "TextAttackResult", "Edit", "summarize", "DeepWordBug", "GCG", "HotFlip", "PWWS", "TextFooler",
    "Constraint", "Constraints", "MaxWordsChanged", "MaxCharsChanged", "LevenshteinBudget", "StopwordsKept",
    "MinSentenceSimilarity", "TextDataset", "load_bbc", "load_tweets", "load_text_dataset", "RECIPES", "make_attack",
    "Words", "ZOO", "load_reference", "resolve_model",
]
