"""DeepWordBug.

Gao, Lanchantin, Soffa & Qi, "Black-box Generation of Adversarial Text
Sequences to Evade Deep Learning Classifiers", IEEE S&P Workshops 2018
(https://arxiv.org/abs/1801.04354).

1. Score every word by how much the classifier's confidence in the true class
   drops when it is replaced by an unknown word -- the paper's *replace-one*
   score (``unk``, default "[UNK]" as in TextAttack; "" deletes the word) --
   or by its *temporal head*, *temporal tail* or *combined* scores computed on
   prefixes and suffixes of the text.
2. Visit words from the highest score down; transform each with the paper's
   character edits: swap two adjacent letters, substitute a letter, delete a
   letter, insert a letter (or a space, splitting the word). Here each word
   gets ``tries`` random edits of every kind and keeps the most damaging one
   if it helps (the greedy variant of TextAttack's recipe); among equally
   damaging edits, the one with the fewest character edits (a swap costs 2).
3. Stop at the first misclassified text or when the constraints (default: at
   most 30 character edits, stop words kept) leave no word to change.

White-box shortcut for transformers (``score="gradient"``): the replace-one
score of every word is estimated from one forward and backward pass (the
first-order change of the loss when the word's pieces become [UNK],
:mod:`advx.text.attacks.subword`) instead of one query per word; with
``prescreen=k`` (needs only the tokenizer) only the k candidate edits of a word
that the subword tokenizer fragments most (most pieces, an unknown piece first)
are sent to the model; with ``greedy="first"`` a word's edits are sent one at a
time (in random order) and the first one that lowers the confidence is kept. All
three cut queries; the edits are the same kinds.
"""

from __future__ import annotations

import string

import torch

from advx.text.attacks.base import AttackState, TextAttack
from advx.text.constraints import Constraint, MaxCharsChanged, StopwordsKept
from advx.text.words import Words, levenshtein

__all__ = ["DeepWordBug", "char_edit"]

EDITS = ("swap", "substitute", "delete", "insert")
SCORES = ("replace-one", "head", "tail", "combined", "gradient")


def char_edit(word: str, kind: str, rng, insert_space: bool = True) -> str | None:
    """One random character edit of ``word`` of the given kind (None if impossible)."""
    letters = string.ascii_uppercase if word.isupper() and len(word) > 1 else string.ascii_lowercase
    n = len(word)
    if kind == "swap":
        if n < 2:
            return None
        i = rng.randrange(n - 1)
        return None if word[i] == word[i + 1] else word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "substitute":
        i = rng.randrange(n)
        c = rng.choice([c for c in letters if c != word[i].lower() and c != word[i]])
        return word[:i] + c + word[i + 1 :]
    if kind == "delete":
        if n < 2:
            return None
        i = rng.randrange(n)
        return word[:i] + word[i + 1 :]
    if kind == "insert":
        if insert_space and n >= 2 and rng.random() < 0.5:
            i = rng.randrange(1, n)
            return word[:i] + " " + word[i:]
        i = rng.randrange(n + 1)
        return word[:i] + rng.choice(letters) + word[i:]
    raise ValueError(f"unknown character edit {kind!r}; choose from {EDITS}")


class DeepWordBug(TextAttack):
    """Black-box character edits on the most important words (Gao et al. 2018).

    Args:
        score: "replace-one" (default), "head", "tail" or "combined" (head + ``lam`` * tail).
        unk: the unknown word of the replace-one score ("" deletes the word).
        edits: which character edits to try among swap, substitute, delete, insert.
        tries: random edits of each kind tried per word (queries per word = tries * len(edits)).
        insert_space: insertions may insert a space (splitting the word in two).
        constraints: default ``MaxCharsChanged(30) & StopwordsKept()``, as TextAttack's recipe.
    """

    name = "deepwordbug"

    def __init__(self, score: str = "replace-one", edits=EDITS, tries: int = 1, insert_space: bool = True,
                 lam: float = 1.0, unk: str = "[UNK]", constraints: Constraint | None = None, query_budget: int | None = None,
                 seed: int = 0, prescreen: int | None = None, greedy: str = "best"):
        if constraints is None:
            constraints = MaxCharsChanged(30) & StopwordsKept()
        super().__init__(constraints, query_budget, seed)
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        bad = [e for e in edits if e not in EDITS]
        if bad or not edits:
            raise ValueError(f"edits must be a non-empty subset of {EDITS}, got {edits!r}")
        if int(tries) < 1:
            raise ValueError(f"tries must be >= 1, got {tries}")
        self.score, self.edits, self.tries = score, tuple(edits), int(tries)
        self.insert_space, self.lam, self.unk = bool(insert_space), float(lam), str(unk)
        if prescreen is not None and int(prescreen) < 1:
            raise ValueError(f"prescreen must be >= 1 or None, got {prescreen}")
        self.prescreen = None if prescreen is None else int(prescreen)
        if greedy not in ("best", "first"):
            raise ValueError(f"greedy must be 'best' (score every edit of a word) or 'first', got {greedy!r}")
        self.greedy = greedy

    def check_classifier(self, classifier) -> None:
        if self.score == "gradient" and not getattr(classifier, "differentiable_tokens", False):
            raise TypeError("DeepWordBug(score='gradient') needs token-embedding gradients (a minilm-* "
                            "or hf: model); use score='replace-one' for a black box")
        if self.prescreen and not hasattr(getattr(classifier, "tokenizer", None), "piece_ids"):
            raise TypeError("DeepWordBug(prescreen=) needs the classifier's subword tokenizer (a minilm-* or hf: model)")

    @staticmethod
    def _fragments(state: AttackState, word: str) -> float:
        """How badly the tokenizer fragments ``word``: its number of word pieces (+10 for an unknown one)."""
        tok = state.classifier.tokenizer
        ids = tok.piece_ids(word)
        return len(ids) + 10.0 * (getattr(tok, "unk_id", None) in ids)

    def _estimator(self, state: AttackState, text: Words):
        from advx.text.attacks.subword import Estimator, loss_for

        ids, grad, _ = state.token_gradient([text], loss_for(state))
        return Estimator(state.classifier, text, ids[0], grad[0])

    def importance(self, state: AttackState, order: list[int]) -> torch.Tensor:
        """Score of each word in ``order``: how much it supports the label (or works against the target)."""
        text = state.current
        if self.score == "gradient":
            unk = getattr(state.classifier.tokenizer, "unk_id", None) if self.unk else None
            return self._estimator(state, text).importance(order, unk)
        if self.score == "replace-one":
            probs = state.predict([text.replace(i, self.unk) for i in order], probe=True)
            return state.objective(probs) - state.objective(state.clean_probs[None])[0]
        n, score = len(text), torch.zeros(len(order))
        empty = Words("")
        if self.score in ("head", "combined"):  # F(x_1..x_i) - F(x_1..x_{i-1}), F = confidence in the label
            conf = 1 - state.objective(state.predict([empty] + [Words(text.head(i)) for i in range(n)], probe=True))
            score += (conf[1:] - conf[:-1])[order]
        if self.score in ("tail", "combined"):  # F(x_i..x_n) - F(x_{i+1}..x_n)
            conf = 1 - state.objective(state.predict([Words(text.tail(i)) for i in range(n)] + [empty], probe=True))
            score += (self.lam if self.score == "combined" else 1.0) * (conf[:-1] - conf[1:])[order]
        return score

    def run(self, state: AttackState) -> None:
        order = [i for i in range(len(state.original)) if state.allowed(i)]
        if not order:
            return
        scores = self.importance(state, order)
        ranked = [order[k] for k in torch.argsort(scores, descending=True, stable=True).tolist()]
        best = state.objective(state.clean_probs[None])[0]
        for i in ranked:
            if not state.allowed(i):
                continue
            word = state.current[i]
            cands, kinds = [], []
            for kind in self.edits:
                for _ in range(self.tries):
                    new = char_edit(word, kind, state.rng, self.insert_space)
                    if new is not None and new != word:
                        cands.append(state.current.replace(i, new))
                        kinds.append(kind)
            keep = state.filter(cands, [i] * len(cands))
            cands, kinds = [cands[k] for k in keep], [kinds[k] for k in keep]
            if not cands:
                continue
            if self.prescreen and len(cands) > self.prescreen:
                top = sorted(range(len(cands)), key=lambda k: -self._fragments(state, cands[k][i]))[: self.prescreen]
                cands, kinds = [cands[k] for k in sorted(top)], [kinds[k] for k in sorted(top)]
            if self.greedy == "first":  # one candidate at a time; keep the first that helps
                for k in sorted(range(len(cands)), key=lambda _: state.rng.random()):
                    probs = state.predict([cands[k]], [i], kinds[k])
                    obj, adv = state.objective(probs)[0], bool(state.adversarial(probs)[0])
                    if adv or obj > best:
                        state.commit(cands[k], i, kinds[k])
                        best = obj
                        if adv:
                            return
                        break
                continue
            probs = state.predict(cands, [i] * len(cands), kinds)
            obj, adv = state.objective(probs), state.adversarial(probs)
            # an adversarial candidate first, then the most damaging, then (ties) the fewest character edits
            score = obj + 2.0 * adv.float()
            ties = (score >= score.max() - 1e-7).nonzero().flatten().tolist()
            k = min(ties, key=lambda t: levenshtein(state.original[i], cands[t][i]))
            if bool(adv[k]) or obj[k] > best:
                state.commit(cands[k], i, kinds[k])
                best = obj[k]
                if bool(adv[k]):
                    return
