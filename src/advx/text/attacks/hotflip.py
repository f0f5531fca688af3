"""HotFlip (character flips).

Ebrahimi, Rao, Lowd & Dou, "HotFlip: White-Box Adversarial Examples for Text
Classification", ACL 2018 (https://arxiv.org/abs/1712.06751).

With characters as one-hot vectors x, flipping character a -> b at position i
changes the loss by about  d_J/dx_{i,b} - d_J/dx_{i,a}  (a first-order
estimate from one backward pass). Beam search: from each of ``beam_width``
texts take the best-estimated flips, score all of them with the model, keep the
``beam_width`` best by the real loss, and repeat for up to ``max_flips`` flips
or until a text is misclassified. Flips replace a letter inside a word with
another letter (keeping its case); only characters the model actually reads
(within its ``max_len``) are flipped. Needs a :class:`~advx.text.classifier.TorchTextClassifier`
over a character model with ``forward_one_hot`` (the reference char-CNNs).

**Over word pieces** (transformers: the ``minilm-*`` models, ``hf:`` classifiers),
HotFlip works at the word level, as the paper's word-level variant does: the
one-hot input is a word piece, the gradient is taken with respect to the input
embeddings (one forward and backward pass), and replacing word *i* by *w* is
estimated to change the loss by the sum over *i*'s pieces of (e(w) - e(x_p)) . g_p
(:mod:`advx.text.attacks.subword`). Replacements are restricted, like the
paper's (cosine of embeddings, same part of speech, no stop words), to the word's
WordNet synonyms and MiniLM embedding neighbours; the beam search is the same.
"""

from __future__ import annotations

import string

import torch
from torch import nn

from advx.attacks.base import positive_int
from advx.text.attacks.base import AttackState, TextAttack
from advx.text.attacks.subword import Estimator, candidate_words, loss_for
from advx.text.constraints import Constraint
from advx.text.words import STOPWORDS, Words

__all__ = ["HotFlip"]


class HotFlip(TextAttack):
    """White-box character flips ranked by the gradient w.r.t. one-hot characters (Ebrahimi et al. 2018).

    Args:
        beam_width: texts kept per step (1 = greedy).
        max_flips: flips at most (steps of the beam search).
        constraints: extra constraints on the flipped text (none by default).
    """

    name = "hotflip"

    def __init__(self, beam_width: int = 5, max_flips: int = 10, constraints: Constraint | None = None,
                 query_budget: int | None = None, seed: int = 0, substitutes=None):
        super().__init__(constraints, query_budget, seed)
        self.beam_width, self.max_flips = positive_int("beam_width", beam_width), positive_int("max_flips", max_flips, 0)
        self._substitutes = substitutes

    def check_classifier(self, classifier) -> None:
        if not (getattr(classifier, "differentiable_chars", False) or getattr(classifier, "differentiable_tokens", False)):
            raise TypeError("HotFlip is white-box: the classifier must be a TorchTextClassifier with a character "
                            "tokenizer and a model with forward_one_hot (e.g. bbc-charcnn), or a transformer with "
                            "token-embedding gradients (minilm-tweets, an hf: model)")

    def substitutes(self, word: str) -> list[str]:
        return candidate_words(self._substitutes, word)

    def run_words(self, state: AttackState) -> None:
        """Word-level HotFlip through a subword tokenizer (beam search on first-order estimates)."""
        loss_fn = loss_for(state)
        x = state.original
        editable = [i for i in range(len(x)) if x[i].lower() not in STOPWORDS and state.allowed(i, x)]
        subs = {i: self.substitutes(x[i]) for i in editable}
        editable = [i for i in editable if subs[i]]
        beams = [state.current]
        for _ in range(self.max_flips):
            if not editable:
                return
            ids, grads, _ = state.token_gradient(beams, loss_fn)
            cands, idx, seen = [], [], set()
            for b, text in enumerate(beams):
                est = Estimator(state.classifier, text, ids[b], grads[b])
                flips = []
                for i in editable:
                    if not state.allowed(i, text):
                        continue
                    options = [w for w in subs[i] if w != text[i]]
                    for gain, w in zip(est.gains(i, options).tolist(), options):
                        if gain > float("-inf"):
                            flips.append((gain, i, w))
                flips.sort(key=lambda f: -f[0])
                flips = flips[: 4 * self.beam_width]
                texts = [text.replace(i, w) for _, i, w in flips]
                taken = 0
                for k in state.filter(texts, [f[1] for f in flips]):
                    if texts[k].text not in seen and taken < self.beam_width:
                        seen.add(texts[k].text)
                        cands.append(texts[k])
                        idx.append(flips[k][1])
                        taken += 1
            beams = self._step(state, cands, idx)
            if not beams:
                return

    def _step(self, state: AttackState, cands: list[Words], idx: list[int]) -> list[Words]:
        """Score the candidates, commit the best; the next beams ([] when done: adversarial or nothing left)."""
        if not cands:
            return []
        probs = state.predict(cands, idx, "flip")
        obj, adv = state.objective(probs), state.adversarial(probs)
        order = torch.argsort(obj + 2.0 * adv.float(), descending=True).tolist()
        best = order[0]
        state.commit(cands[best])
        state.kinds = {i: "flip" for i in state.original.changed(cands[best])}
        return [] if bool(adv[best]) else [cands[k] for k in order[: self.beam_width]]

    def _flips(self, state: AttackState, text: Words, grad: torch.Tensor, ids: torch.Tensor) -> list[tuple[float, Words, int]]:
        """The best-estimated single flips of ``text``: (estimated gain, flipped text, word index)."""
        tok = state.classifier.tokenizer
        letters = [c for c in string.ascii_lowercase if c in tok.index]
        letter_ids = torch.tensor([tok.index[c] for c in letters])
        raw = text.text
        limit = min(tok.max_len, len(raw))
        bad = [p for p, c in enumerate(raw[:limit]) if len(c.lower()) != 1]
        limit = bad[0] if bad else limit  # positions stay aligned with the tokenizer's lower-cased text
        positions, words, spans = [], [], text.spans()
        for i, (s, e) in enumerate(spans):
            if s >= limit or not state.allowed(i, text):
                continue
            for p in range(s, min(e, limit)):
                if raw[p].lower() in letters:
                    positions.append(p)
                    words.append(i)
        if not positions:
            return []
        pos = torch.tensor(positions)
        g = grad[pos][:, letter_ids] - grad[pos, ids[pos]][:, None]  # (P, 26) estimated gain
        for r, p in enumerate(positions):
            g[r, letters.index(raw[p].lower())] = float("-inf")  # not a flip
        top = g.flatten().topk(min(self.beam_width * 4, g.numel()))
        out = []
        for gain, flat in zip(top.values.tolist(), top.indices.tolist()):
            r, c = divmod(flat, len(letters))
            p, i = positions[r], words[r]
            s = spans[i][0]
            new_char = letters[c].upper() if raw[p].isupper() else letters[c]
            w = text[i]
            out.append((gain, text.replace(i, w[: p - s] + new_char + w[p - s + 1 :]), i))
        return out

    def run(self, state: AttackState) -> None:
        if not getattr(state.classifier, "differentiable_chars", False):
            return self.run_words(state)
        y = torch.tensor([state.label if state.target is None else state.target])
        sign = 1.0 if state.target is None else -1.0

        def loss_fn(logits: torch.Tensor) -> torch.Tensor:
            return sign * nn.functional.cross_entropy(logits, y.expand(len(logits)), reduction="none")

        beams = [state.current]
        for _ in range(self.max_flips):
            cands, idx, seen = [], [], set()
            for text in beams:
                ids, grad, _ = state.gradient([text], loss_fn)
                flips = self._flips(state, text, grad[0], ids[0])
                taken = 0
                for k in state.filter([f[1] for f in flips], [f[2] for f in flips]):
                    _, cand, i = flips[k]
                    if cand.text not in seen and taken < self.beam_width:
                        seen.add(cand.text)
                        cands.append(cand)
                        idx.append(i)
                        taken += 1
            beams = self._step(state, cands, idx)
            if not beams:
                return
