"""Attack recipes by name, with the constraints each paper (or TextAttack's recipe) uses.

=================  ==================================================================
``deepwordbug``    DeepWordBug: char edits, <= 30 character edits, stop words kept
``hotflip``        HotFlip: white-box char flips, beam 5, <= 10 flips (char-CNN only)
``pwws``           PWWS: WordNet synonyms, stop words kept
``textfooler``     TextFooler: embedding neighbours (k=50, cos >= 0.5), MiniLM
                   similarity >= 0.84 on 15-word windows, stop words kept
``gcg``            GCG (Zou et al. 2023) adapted: gradient-ranked word substitutions, batches
                   of 16 per step, <= 20% of the words, MiniLM window similarity >= 0.8
                   (transformers only: minilm-*, hf:)
=================  ==================================================================
"""

from __future__ import annotations

from advx.text.attacks import GCG, PWWS, DeepWordBug, HotFlip, TextAttack, TextFooler

__all__ = ["RECIPES", "make_attack"]

RECIPES = {"deepwordbug": DeepWordBug, "hotflip": HotFlip, "pwws": PWWS, "textfooler": TextFooler, "gcg": GCG}


def make_attack(recipe: str, query_budget: int | None = None, seed: int = 0, **kwargs) -> TextAttack:
    """The attack ``recipe`` with its default constraints (``kwargs`` override its arguments)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[recipe](query_budget=query_budget, seed=seed, **kwargs)
