"""Word substitutes from nearest neighbours in an embedding space.

TextFooler (Jin et al. 2020) takes its candidates from counter-fitted word
vectors (Mrksic et al. 2016), which are not available offline. Here the space
is the input word-piece embedding table of all-MiniLM-L6-v2 restricted to
whole, alphabetic word pieces (about 21.7k English words), and two of
counter-fitting's goals are approximated with WordNet: antonyms (in either
direction) are removed, and a candidate must share a part of speech with the
word when WordNet knows both.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from advx.text.minilm import default_encoder
from advx.text.wordnet import wordnet
from advx.text.words import match_case

__all__ = ["EmbeddingNeighbours", "default_neighbours"]


class EmbeddingNeighbours:
    """``neighbours(word, k, min_cos)`` -> up to k words with cosine >= min_cos, closest first."""

    def __init__(self, words: list[str], vectors: torch.Tensor, use_wordnet: bool = True):
        if len(words) != len(vectors):
            raise ValueError(f"words ({len(words)}) and vectors ({len(vectors)}) must have the same length")
        self.words = list(words)
        self.index = {w: k for k, w in enumerate(self.words)}
        self.vectors = nn.functional.normalize(vectors.float(), dim=1)
        self.use_wordnet = use_wordnet

    @classmethod
    def minilm(cls) -> EmbeddingNeighbours:
        enc = default_encoder()
        words = [w for w in enc.tokenizer.vocab if w.isalpha() and w.isascii() and len(w) > 1]
        ids = torch.tensor([enc.tokenizer.vocab[w] for w in words])
        return cls(words, enc.model.word.weight[ids].detach())

    def neighbours(self, word: str, k: int = 50, min_cos: float = 0.5) -> list[str]:
        key = word.lower()
        if key not in self.index:
            return []
        sims = self.vectors @ self.vectors[self.index[key]]
        sims[self.index[key]] = -2.0
        top = sims.topk(min(k, len(self.words) - 1))
        out = [self.words[j] for s, j in zip(top.values.tolist(), top.indices.tolist()) if s >= min_cos]
        if self.use_wordnet and out:
            wn = wordnet()
            banned = wn.antonyms(key)
            pos = wn.pos_of(key)
            keep = []
            for c in out:
                if c in banned or key in wn.antonyms(c):
                    continue
                cpos = wn.pos_of(c)
                if pos and cpos and not (pos & cpos):
                    continue
                keep.append(c)
            out = keep
        return [match_case(c, word) for c in out]


@lru_cache(maxsize=1)
def default_neighbours() -> EmbeddingNeighbours:
    return EmbeddingNeighbours.minilm()


def substitutes(word: str, k: int = 50, min_cos: float = 0.5, synonyms: bool = True) -> list[str]:
    """Candidate replacements of ``word``: WordNet synonyms first, then MiniLM embedding neighbours (no duplicates)."""
    out = list(wordnet().synonyms(word)) if synonyms else []
    out += default_neighbours().neighbours(word, k, min_cos)
    return [w for w in dict.fromkeys(out) if w.lower() != word.lower()]
