"""First-order estimates through a subword tokenizer (white-box helpers shared by the token attacks).

A transformer reads word pieces, the attacks edit words. For a text under
attack, :func:`word_tokens` maps each word of a :class:`~advx.text.words.Words`
to the token positions the classifier's tokenizer gives it (through the
tokenizer's character spans), and with one forward and backward pass
(``state.token_gradient``: d loss / d input embeddings) the change of the loss
when word *i* becomes word *w* is estimated to first order, as HotFlip does for
one-hot inputs (Ebrahimi et al. 2018):

    gain(i -> w) = sum over the positions p of word i of (e(w) - e(x_p)) . g_p

with e(w) the mean input embedding of w's pieces. Exact for single-piece words
up to the first-order term; for multi-piece words a ranking heuristic, which
is why candidates are always re-scored by the model before anything is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from advx.text.words import Words

__all__ = ["word_tokens", "Estimator", "loss_for", "candidate_words"]


def word_tokens(text: Words, spans: Sequence[tuple[int, int] | None]) -> dict[int, list[int]]:
    """Word index -> token positions whose character span overlaps the word (in the current text)."""
    out: dict[int, list[int]] = {}
    wspans = text.spans()
    k = 0
    for p, sp in enumerate(spans):
        if sp is None:
            continue
        a, b = sp
        while k < len(wspans) and wspans[k][1] <= a:
            k += 1
        j = k
        while j < len(wspans) and wspans[j][0] < b:
            if wspans[j][1] > a:
                out.setdefault(j, []).append(p)
            j += 1
    return out


def candidate_words(custom, word: str) -> list[str]:
    """``custom(word)`` if given, else WordNet synonyms + MiniLM neighbours (:func:`advx.text.neighbours.substitutes`)."""
    if custom is not None:
        return list(custom(word))
    from advx.text.neighbours import substitutes

    return substitutes(word)


def loss_for(state) -> callable:
    """Cross-entropy of the label (maximised), or minus that of the target (targeted)."""
    y = torch.tensor([state.label if state.target is None else state.target])
    sign = 1.0 if state.target is None else -1.0

    def loss_fn(logits: Tensor) -> Tensor:
        return sign * nn.functional.cross_entropy(logits, y.expand(len(logits)), reduction="none")

    return loss_fn


class Estimator:
    """First-order loss changes of word substitutions for one text, from one gradient pass."""

    def __init__(self, classifier, text: Words, ids: Tensor, grad: Tensor):
        self.clf, self.text = classifier, text
        self.E = classifier.embedding_matrix()
        self.ids, self.grad = ids, grad
        self.positions = word_tokens(text, classifier.tokenizer.spans(text.text))
        self._cache: dict[str, Tensor | None] = {}

    def embedding(self, word: str) -> Tensor | None:
        """Mean input embedding of the pieces of ``word`` (None if it has none)."""
        if word not in self._cache:
            pieces = self.clf.tokenizer.piece_ids(word) if word.strip() else []
            self._cache[word] = self.E[pieces].mean(0) if pieces else None
        return self._cache[word]

    def gains(self, i: int, words: Sequence[str]) -> Tensor:
        """Estimated loss increase of replacing word ``i`` by each of ``words`` (-inf where unknown)."""
        pos = self.positions.get(i)
        out = torch.full((len(words),), float("-inf"))
        if not pos or not words:
            return out
        g = self.grad[pos]  # (P, D)
        base = (self.E[self.ids[pos]] * g).sum()
        gsum = g.sum(0)
        for k, w in enumerate(words):
            e = self.embedding(w) if w else None
            if w == "":  # deletion: the word's pieces vanish (to first order: their embeddings go to zero)
                out[k] = -base
            elif e is not None:
                out[k] = e @ gsum - base
        return out

    def importance(self, order: Sequence[int], unk_id: int | None) -> Tensor:
        """Estimated loss increase when each word of ``order`` becomes the unknown token (or vanishes)."""
        out = torch.zeros(len(order))
        for k, i in enumerate(order):
            pos = self.positions.get(i)
            if not pos:
                out[k] = float("-inf")
                continue
            g = self.grad[pos]
            new = self.E[unk_id] if unk_id is not None else torch.zeros_like(g[0])
            out[k] = ((new[None] - self.E[self.ids[pos]]) * g).sum()
        return out
