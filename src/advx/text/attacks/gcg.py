"""GCG: greedy coordinate gradient search over word substitutions, for classifiers.

Zou, Wang, Carlini, Nasr, Kolter & Fredrikson, "Universal and Transferable
Adversarial Attacks on Aligned Language Models", 2023
(https://arxiv.org/abs/2307.15043), Algorithm 1: at each step, one backward pass
gives the gradient of the loss with respect to the (one-hot) token at every
modifiable position; each position keeps the top-k replacements by the
linearised loss; B candidates are drawn, each changing one uniformly chosen
position to one uniformly chosen token of its top-k; all B are scored in one
batch and the best becomes the next text.

Adapted here from a jailbreak suffix to a classification attack under an edit
budget, on words rather than free tokens:

* the loss is the cross-entropy of the true label (maximised; targeted: minus
  the cross-entropy of the target);
* coordinates are the words of the text (stop words excluded); a word's
  replacements are its WordNet synonyms and MiniLM embedding neighbours
  (:func:`advx.text.neighbours.substitutes`), ranked by the first-order estimate of
  :mod:`advx.text.attacks.subword` (the gradient with respect to the word-piece
  embeddings, so any subword tokenizer works);
* the edit budget (default: at most 20% of the words) and the sentence
  similarity (MiniLM cosine >= 0.8 on the 15-word window) are constraints checked
  before a candidate is sent to the model, cheap ones first;
* the search stops at the first misclassified text; a step whose best candidate
  does not improve the loss still moves (as GCG does), the best text seen is kept.

Each step costs one gradient (counted as a query and a gradient) plus at most
``candidates`` queries.
"""

from __future__ import annotations

import torch

from advx.attacks.base import positive_int
from advx.text.attacks.base import AttackState, TextAttack
from advx.text.attacks.subword import Estimator, candidate_words, loss_for
from advx.text.constraints import Constraint, Constraints, MaxWordsChanged, MinSentenceSimilarity, StopwordsKept

__all__ = ["GCG"]


class GCG(TextAttack):
    """Greedy coordinate gradient word substitution (Zou et al. 2023), white-box, for subword classifiers.

    Args:
        steps: search steps at most (each one gradient + up to ``candidates`` queries).
        top_k: replacements kept per word by the gradient estimate.
        candidates: B, texts scored per step.
        max_words: the edit budget, a fraction of the words (default 0.2) or, if >= 1, a count.
        sim_threshold, window: the similarity constraint (MiniLM cosine); None disables it.
        substitutes: function word -> candidate replacements (default WordNet synonyms + MiniLM neighbours).
    """

    name = "gcg"

    def __init__(self, steps: int = 20, top_k: int = 8, candidates: int = 16, max_words: float = 0.2,
                 sim_threshold: float | None = 0.8, window: int | None = 15, substitutes=None,
                 constraints: Constraint | None = None, query_budget: int | None = None, seed: int = 0):
        budget = MaxWordsChanged(int(max_words)) if max_words >= 1 else MaxWordsChanged(fraction=float(max_words))
        parts = [StopwordsKept(), budget] + ([constraints] if constraints is not None else [])
        if sim_threshold is not None:
            parts.append(MinSentenceSimilarity(sim_threshold, window))
        super().__init__(Constraints(parts), query_budget, seed)
        self.steps, self.top_k, self.candidates = (positive_int(k, v) for k, v in
                                                   (("steps", steps), ("top_k", top_k), ("candidates", candidates)))
        self._substitutes = substitutes

    def check_classifier(self, classifier) -> None:
        if not getattr(classifier, "differentiable_tokens", False):
            raise TypeError("GCG is white-box: it needs gradients w.r.t. the token embeddings (the minilm-* reference "
                            "models, or an hf: transformers classifier)")

    def substitutes(self, word: str) -> list[str]:
        return candidate_words(self._substitutes, word)

    def run(self, state: AttackState) -> None:
        loss_fn = loss_for(state)
        x = state.original
        words = [i for i in range(len(x)) if state.allowed(i, x)]
        subs = {i: self.substitutes(x[i]) for i in words}
        words = [i for i in words if subs[i]]
        if not words:
            return
        best_text, best = x, float(state.objective(state.clean_probs[None])[0])
        cur = x
        for _ in range(self.steps):
            ids, grad, _ = state.token_gradient([cur], loss_fn)
            est = Estimator(state.classifier, cur, ids[0], grad[0])
            top: dict[int, list[str]] = {}
            for i in words:
                if not state.allowed(i, cur):
                    continue
                options = [s for s in subs[i] if s != cur[i]] + ([x[i]] if cur[i] != x[i] else [])
                gains = est.gains(i, options)
                keep = [options[k] for k in gains.topk(min(self.top_k, len(options))).indices.tolist()
                        if gains[k] > float("-inf")]
                if keep:
                    top[i] = keep
            if not top:
                break
            positions = sorted(top)
            pool, seen = [], set()
            for _ in range(4 * self.candidates):  # draw B distinct (position, replacement) pairs
                i = positions[state.rng.randrange(len(positions))]
                w = top[i][state.rng.randrange(len(top[i]))]
                if (i, w) not in seen:
                    seen.add((i, w))
                    pool.append((i, w))
                if len(pool) == self.candidates:
                    break
            cands = [cur.replace(i, w) for i, w in pool]
            keep = state.filter(cands, [i for i, _ in pool])
            if not keep:
                continue
            cands, idx = [cands[k] for k in keep], [pool[k][0] for k in keep]
            probs = state.predict(cands, idx, "gcg")
            obj, adv = state.objective(probs), state.adversarial(probs)
            k = int(torch.argmax(obj + 2.0 * adv.float()))
            cur = cands[k]
            state.commit(cur, idx[k], "gcg")
            if bool(adv[k]):
                return
            if float(obj[k]) > best:
                best_text, best = cur, float(obj[k])
        state.commit(best_text)
        state.kinds = {i: "gcg" for i in x.changed(best_text)}
