"""TextFooler.

Jin, Jin, Zhou & Szolovits, "Is BERT Really Robust? A Strong Baseline for
Natural Language Attack on Text Classification and Entailment", AAAI 2020
(https://arxiv.org/abs/1907.11932).

1. Word importance by deletion: I_i = P(y|x) - P(y|x without w_i), plus
   P(y'|x without w_i) - P(y'|x) when deleting w_i changes the prediction to y'.
2. Skip stop words. For words in decreasing importance:
   candidates = the ``k`` nearest embedding neighbours with cosine >= ``min_cos``
   (:mod:`advx.text.neighbours`: MiniLM word-piece embeddings, WordNet antonyms
   removed, same part of speech), kept only if the sentence similarity of the
   ``window`` words around the change stays >= ``sim_threshold``
   (all-MiniLM-L6-v2 here; the paper uses the Universal Sentence Encoder).
3. If some candidates are adversarial, return the one most similar to the
   original; otherwise keep the candidate that lowers P(y|.) most, if it does.
"""

from __future__ import annotations

import torch

from advx.text.attacks.base import AttackState, TextAttack
from advx.text.constraints import Constraint, Constraints, MinSentenceSimilarity, StopwordsKept

__all__ = ["TextFooler"]


class TextFooler(TextAttack):
    """Greedy embedding-neighbour substitution under a sentence-similarity constraint (Jin et al. 2020).

    Args:
        k: neighbours considered per word (paper: 50).
        min_cos: minimum embedding cosine of a neighbour (paper: 0.5).
        sim_threshold, window: the sentence-similarity constraint (TextAttack's recipe: 0.84, 15 words;
            ``window=None`` compares whole texts).
        neighbours: object with ``neighbours(word, k, min_cos) -> list[str]`` (default: MiniLM embeddings).
        constraints: extra constraints (stop words are always kept; the similarity one is added).
    """

    name = "textfooler"

    def __init__(self, k: int = 50, min_cos: float = 0.5, sim_threshold: float = 0.84, window: int | None = 15,
                 neighbours=None, encoder=None, constraints: Constraint | None = None,
                 query_budget: int | None = None, seed: int = 0):
        self.similarity = MinSentenceSimilarity(sim_threshold, window, encoder)
        extra = [] if constraints is None else [constraints]
        super().__init__(Constraints([StopwordsKept(), *extra, self.similarity]), query_budget, seed)
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k, self.min_cos = int(k), float(min_cos)
        self._neighbours = neighbours

    @property
    def neighbours(self):
        if self._neighbours is None:
            from advx.text.neighbours import default_neighbours

            self._neighbours = default_neighbours()
        return self._neighbours

    def importance(self, state: AttackState, order: list[int]) -> torch.Tensor:
        x, p0 = state.original, state.clean_probs
        probs = state.predict([x.replace(i, "") for i in order], probe=True)
        score = state.objective(probs) - state.objective(p0[None])[0]
        pred0, pred = int(p0.argmax()), probs.argmax(1)
        changed = pred != pred0
        if bool(changed.any()):
            rows = changed.nonzero().flatten()
            score[rows] += probs[rows, pred[rows]] - p0[pred[rows]]
        return score

    def run(self, state: AttackState) -> None:
        order = [i for i in range(len(state.original)) if state.allowed(i)]
        if not order:
            return
        ranked = [order[k] for k in torch.argsort(self.importance(state, order), descending=True, stable=True).tolist()]
        best = state.objective(state.clean_probs[None])[0]
        for i in ranked:
            if not state.allowed(i):
                continue
            subs = self.neighbours.neighbours(state.original[i], self.k, self.min_cos)
            cands = [state.current.replace(i, s) for s in subs]
            cands = [cands[k] for k in state.filter(cands, [i] * len(cands))]
            if not cands:
                continue
            probs = state.predict(cands, [i] * len(cands), "neighbour")
            adv, obj = state.adversarial(probs), state.objective(probs)
            if bool(adv.any()):
                hits = adv.nonzero().flatten().tolist()
                sims = self.similarity.similarity(state.original, [cands[h] for h in hits], [i] * len(hits))
                state.commit(cands[hits[max(range(len(hits)), key=sims.__getitem__)]], i, "neighbour")
                return
            k = int(torch.argmax(obj))
            if obj[k] > best:
                state.commit(cands[k], i, "neighbour")
                best = obj[k]
