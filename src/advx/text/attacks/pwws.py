"""Probability Weighted Word Saliency (PWWS).

Ren, Deng, He & Che, "Generating Natural Language Adversarial Examples through
Probability Weighted Word Saliency", ACL 2019 (https://aclanthology.org/P19-1103/).

For each word w_i of x:

1. saliency S(x, w_i) = P(y|x) - P(y|x with w_i replaced by an unknown word);
2. best synonym w_i* = argmax over WordNet synonyms w' of
   dP_i* = P(y|x) - P(y|x with w_i -> w');
3. score H(x, w_i) = softmax(S)_i * dP_i*.

Then substitute w_i -> w_i* in decreasing order of H, one after the other,
until the text is misclassified. (Targeted: P(y|.) becomes 1 - P(target|.).)
Here the "unknown word" is "[UNK]" (as in TextAttack; ``unk=""`` deletes the
word instead); synonyms come from :mod:`advx.text.wordnet`.

White-box shortcut for transformers (``estimate="gradient"``): S and dP_i* are
estimated from one forward and backward pass (first-order changes of the loss
through the word-piece embeddings, :mod:`advx.text.attacks.subword`), so only
the greedy substitutions of step 3 are queried: for each word in turn, its
``verify`` best-estimated synonyms (default 3), in one batch, keeping the best.
"""

from __future__ import annotations

import torch

from advx.text.attacks.base import AttackState, TextAttack
from advx.text.constraints import Constraint, StopwordsKept
from advx.text.wordnet import wordnet

__all__ = ["PWWS"]


class PWWS(TextAttack):
    """Greedy WordNet synonym substitution ordered by probability-weighted saliency (Ren et al. 2019).

    Args:
        unk: what replaces a word when measuring its saliency (default "[UNK]"; "" deletes it).
        max_synonyms: synonyms tried per word (None: all of WordNet's).
        synonyms: a function word -> list of substitutes (default: WordNet).
        constraints: default ``StopwordsKept()``, as TextAttack's PWWS recipe.
    """

    name = "pwws"

    def __init__(self, unk: str = "[UNK]", max_synonyms: int | None = None, synonyms=None,
                 constraints: Constraint | None = None, query_budget: int | None = None, seed: int = 0,
                 estimate: str = "query", verify: int = 3):
        super().__init__(StopwordsKept() if constraints is None else constraints, query_budget, seed)
        if estimate not in ("query", "gradient"):
            raise ValueError(f"estimate must be 'query' (black box) or 'gradient' (white box), got {estimate!r}")
        if int(verify) < 1:
            raise ValueError(f"verify must be >= 1, got {verify}")
        self.estimate, self.verify = estimate, int(verify)
        if max_synonyms is not None and int(max_synonyms) < 1:
            raise ValueError(f"max_synonyms must be >= 1 or None, got {max_synonyms}")
        self.unk, self.max_synonyms = unk, max_synonyms
        self._synonyms = synonyms

    def synonyms(self, word: str) -> list[str]:
        subs = self._synonyms(word) if self._synonyms is not None else wordnet().synonyms(word)
        return subs[: self.max_synonyms] if self.max_synonyms else subs

    def check_classifier(self, classifier) -> None:
        if self.estimate == "gradient" and not getattr(classifier, "differentiable_tokens", False):
            raise TypeError("PWWS(estimate='gradient') needs token-embedding gradients (a minilm-* or hf: model); "
                            "use estimate='query' for a black box")

    def run(self, state: AttackState) -> None:
        x = state.original
        words = [i for i in range(len(x)) if state.allowed(i)]
        if not words:
            return
        base = state.objective(state.clean_probs[None])[0]
        est = None
        if self.estimate == "gradient":
            from advx.text.attacks.subword import Estimator, loss_for

            ids, grad, _ = state.token_gradient([x], loss_for(state))
            est = Estimator(state.classifier, x, ids[0], grad[0])
            unk = getattr(state.classifier.tokenizer, "unk_id", None) if self.unk else None
            saliency = est.importance(words, unk)
            saliency = torch.where(torch.isfinite(saliency), saliency, torch.full_like(saliency, -1e9))
        else:
            saliency = state.objective(state.predict([x.replace(i, self.unk) for i in words], probe=True)) - base
        gains, best = [], []
        for i in words:
            cands = [x.replace(i, s) for s in self.synonyms(x[i])]
            cands = [cands[k] for k in state.filter(cands, [i] * len(cands))]
            if not cands:
                gains.append(float("-inf"))
                best.append(None)
                continue
            if est is not None:
                gain = est.gains(i, [c[i] for c in cands])
                if not bool(torch.isfinite(gain).any()):
                    gains.append(float("-inf"))
                    best.append(None)
                    continue
            else:
                gain = state.objective(state.predict(cands, [i] * len(cands), "synonym")) - base
            top = gain.topk(min(self.verify if est is not None else 1, len(gain))).indices.tolist()
            gains.append(float(gain[top[0]]))
            best.append([cands[t][i] for t in top if gain[t] > float("-inf")])
        weights = torch.softmax(saliency, dim=0)
        score = torch.tensor([float(w) * g if g != float("-inf") else g for w, g in zip(weights, gains)])
        for k in torch.argsort(score, descending=True, stable=True).tolist():
            i = words[k]
            if best[k] is None:
                break
            if not state.allowed(i):
                continue
            cands = [state.current.replace(i, w) for w in best[k]]
            cands = [cands[j] for j in state.filter(cands, [i] * len(cands))]
            if not cands:
                continue
            probs = state.predict(cands, [i] * len(cands), "synonym")
            j = int(torch.argmax(state.objective(probs) + 2.0 * state.adversarial(probs).float()))
            state.commit(cands[j], i, "synonym")
            if bool(state.adversarial(probs)[j]):
                return
