"""Constraints on text edits, composable with ``&``.

A constraint answers two questions, mirroring the pre- and post-transformation
constraints of TextAttack (Morris et al. 2020, https://arxiv.org/abs/2005.05909):

* :meth:`Constraint.allows` -- may the attack touch word ``i`` of the current text
  at all (stop words, words already at the budget)?
* :meth:`Constraint.check` -- which of these candidate texts are acceptable, as a
  whole, compared with the original? Candidates come as :class:`~advx.text.words.Words`
  edits of the original with the index of the word each one just modified.

Every attack consults both before it queries the model, so a returned text
always satisfies every constraint it was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from advx.text.words import STOPWORDS, Words, levenshtein

__all__ = ["Constraint", "Constraints", "MaxWordsChanged", "MaxCharsChanged", "LevenshteinBudget", "StopwordsKept",
           "MinSentenceSimilarity"]


class Constraint:
    """Base: allows everything. Override :meth:`allows` and/or :meth:`check`."""

    def allows(self, original: Words, current: Words, index: int) -> bool:
        return True

    def check(self, original: Words, candidates: Sequence[Words], indices: Sequence[int]) -> list[bool]:
        return [True] * len(candidates)

    def __and__(self, other: Constraint) -> Constraints:
        return Constraints([self, other])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Constraints(Constraint):
    """All of several constraints; cheap ones first, later ones only see the survivors."""

    def __init__(self, constraints: Iterable[Constraint] = ()):
        flat: list[Constraint] = []
        for c in constraints:
            if not isinstance(c, Constraint):
                raise TypeError(f"constraints must be advx.text.constraints.Constraint objects, got {type(c).__name__}")
            flat += c.items if isinstance(c, Constraints) else [c]
        self.items = flat

    def allows(self, original: Words, current: Words, index: int) -> bool:
        return all(c.allows(original, current, index) for c in self.items)

    def check(self, original: Words, candidates: Sequence[Words], indices: Sequence[int]) -> list[bool]:
        ok = [True] * len(candidates)
        for c in self.items:
            alive = [k for k, v in enumerate(ok) if v]
            if not alive:
                break
            verdict = c.check(original, [candidates[k] for k in alive], [indices[k] for k in alive])
            for k, v in zip(alive, verdict):
                ok[k] = bool(v)
        return ok

    def __repr__(self) -> str:
        return " & ".join(map(repr, self.items)) or "Constraints([])"


def _limit(count: int | None, fraction: float | None, total: int, name: str) -> int:
    if count is None and fraction is None:
        raise ValueError(f"{name} needs a count or a fraction (e.g. {name}(5) or {name}(fraction=0.1))")
    lim = float("inf")
    if count is not None:
        if int(count) < 0:
            raise ValueError(f"{name}: the count must be >= 0, got {count}")
        lim = int(count)
    if fraction is not None:
        if not 0 <= float(fraction) <= 1:
            raise ValueError(f"{name}: fraction must be in [0, 1], got {fraction}")
        lim = min(lim, int(float(fraction) * total))
    return int(lim)


class MaxWordsChanged(Constraint):
    """At most ``max_words`` words (and/or a ``fraction`` of the words) differ from the original."""

    def __init__(self, max_words: int | None = None, fraction: float | None = None):
        _limit(max_words, fraction, 0, "MaxWordsChanged")
        self.max_words, self.fraction = max_words, fraction

    def _lim(self, original: Words) -> int:
        return _limit(self.max_words, self.fraction, len(original), "MaxWordsChanged")

    def allows(self, original: Words, current: Words, index: int) -> bool:
        changed = original.changed(current)
        return index in changed or len(changed) + 1 <= self._lim(original)

    def check(self, original, candidates, indices):
        lim = self._lim(original)
        return [len(original.changed(c)) <= lim for c in candidates]


class MaxCharsChanged(Constraint):
    """Total character edits (sum of per-word Levenshtein distances) at most ``max_chars``
    and/or a ``fraction`` of the text's length."""

    def __init__(self, max_chars: int | None = None, fraction: float | None = None):
        _limit(max_chars, fraction, 0, "MaxCharsChanged")
        self.max_chars, self.fraction = max_chars, fraction

    def _lim(self, original: Words) -> int:
        return _limit(self.max_chars, self.fraction, len(original.text), "MaxCharsChanged")

    def allows(self, original, current, index):
        used = sum(levenshtein(original[i], current[i]) for i in original.changed(current) if i != index)
        return used + 1 <= self._lim(original)

    def check(self, original, candidates, indices):
        lim = self._lim(original)
        return [sum(levenshtein(original[i], c[i]) for i in original.changed(c)) <= lim for c in candidates]


class LevenshteinBudget(Constraint):
    """No single word is more than ``max_distance`` character edits away from its original."""

    def __init__(self, max_distance: int):
        if int(max_distance) < 0:
            raise ValueError(f"max_distance must be >= 0, got {max_distance}")
        self.max_distance = int(max_distance)

    def allows(self, original, current, index):
        return self.max_distance > 0

    def check(self, original, candidates, indices):
        return [all(levenshtein(original[i], c[i]) <= self.max_distance for i in original.changed(c)) for c in candidates]


class StopwordsKept(Constraint):
    """Stop words are never modified (default list: :data:`advx.text.words.STOPWORDS`)."""

    def __init__(self, stopwords: Iterable[str] | None = None):
        self.stopwords = frozenset(w.lower() for w in stopwords) if stopwords is not None else STOPWORDS

    def allows(self, original, current, index):
        return original[index].lower() not in self.stopwords

    def check(self, original, candidates, indices):
        return [all(original[i].lower() not in self.stopwords for i in original.changed(c)) for c in candidates]

    def __repr__(self) -> str:
        return f"StopwordsKept({len(self.stopwords)} words)"


class MinSentenceSimilarity(Constraint):
    """Cosine similarity of sentence embeddings (all-MiniLM-L6-v2) to the original at least ``threshold``.

    With ``window``, compares the ``window`` words around the modified word (as
    TextFooler does with the Universal Sentence Encoder), else the whole texts.
    ``encoder`` is anything with ``encode(list[str]) -> (N, D)`` unit vectors.
    """

    def __init__(self, threshold: float = 0.84, window: int | None = 15, encoder=None):
        if not -1 <= float(threshold) <= 1:
            raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
        if window is not None and int(window) < 1:
            raise ValueError(f"window must be a positive number of words or None, got {window}")
        self.threshold, self.window, self._encoder = float(threshold), window, encoder

    @property
    def encoder(self):
        if self._encoder is None:
            from advx.text.minilm import default_encoder

            self._encoder = default_encoder()
        return self._encoder

    def similarity(self, original: Words, candidates: Sequence[Words], indices: Sequence[int]) -> list[float]:
        if not candidates:
            return []
        if self.window is None:
            a, b = [original.text] * len(candidates), [c.text for c in candidates]
        else:
            a = [original.window(i, self.window) for i in indices]
            b = [c.window(i, self.window) for c, i in zip(candidates, indices)]
        uniq = list(dict.fromkeys(a + b))
        emb = self.encoder.encode(uniq)
        pos = {t: k for k, t in enumerate(uniq)}
        return [float(emb[pos[x]] @ emb[pos[y]]) for x, y in zip(a, b)]

    def check(self, original, candidates, indices):
        return [s >= self.threshold for s in self.similarity(original, candidates, indices)]
