"""Small reference text classifiers and their tokenizers.

* :class:`CharCNN` -- a character-level CNN in the spirit of Zhang, Zhao & LeCun,
  "Character-level Convolutional Networks for Text Classification", NeurIPS 2015
  (https://arxiv.org/abs/1509.01626), scaled down to train in minutes on a CPU.
  It takes one-hot characters, so HotFlip can differentiate with respect to them
  (:meth:`CharCNN.forward_one_hot`).
* :class:`WordCNN` -- the word-level CNN of Kim, "Convolutional Neural Networks
  for Sentence Classification", EMNLP 2014 (https://arxiv.org/abs/1408.5882).

Tokenizers map a list of strings to a LongTensor of ids (index 0 is padding,
1 is "unknown"). Models are saved as one safetensors file (weights, stored in
float16 to keep the committed files small) plus a JSON file with the
architecture, tokenizer and class names: loading never runs pickled code.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

__all__ = ["CharTokenizer", "WordTokenizer", "CharCNN", "WordCNN", "save_text_model", "load_text_model", "read_sidecar",
           "check_sidecar"]

PAD, UNK = 0, 1
DEFAULT_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 -,;.!?:'\"/\\|_@#$%^&*~`+=<>()[]{}\n"
_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


class CharTokenizer:
    """Lower-cased characters to ids; characters outside the alphabet are UNK."""

    kind = "char"

    def __init__(self, alphabet: str = DEFAULT_ALPHABET, max_len: int = 512):
        if len(set(alphabet)) != len(alphabet):
            raise ValueError("alphabet must not repeat characters")
        self.alphabet = alphabet
        self.max_len = int(max_len)
        self.index = {c: i + 2 for i, c in enumerate(alphabet)}
        self.vocab_size = len(alphabet) + 2

    def __call__(self, texts: list[str]) -> Tensor:
        out = torch.zeros(len(texts), self.max_len, dtype=torch.long)
        for r, t in enumerate(texts):
            ids = [self.index.get(c, UNK) for c in t.lower()[: self.max_len]]
            out[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def config(self) -> dict:
        return {"kind": "char", "alphabet": self.alphabet, "max_len": self.max_len}


class WordTokenizer:
    """Lower-cased words (and punctuation marks) to ids from a fixed vocabulary."""

    kind = "word"

    def __init__(self, vocab: list[str], max_len: int = 256):
        self.vocab = list(vocab)
        self.max_len = int(max_len)
        self.index = {w: i + 2 for i, w in enumerate(self.vocab)}
        self.vocab_size = len(self.vocab) + 2

    @staticmethod
    def split(text: str) -> list[str]:
        return _TOKEN.findall(text.lower())

    @classmethod
    def build(cls, texts: Iterable[str], size: int, max_len: int = 256, min_count: int = 2) -> WordTokenizer:
        counts = Counter(w for t in texts for w in cls.split(t))
        vocab = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count][:size]
        return cls(vocab, max_len)

    def __call__(self, texts: list[str]) -> Tensor:
        out = torch.zeros(len(texts), self.max_len, dtype=torch.long)
        for r, t in enumerate(texts):
            ids = [self.index.get(w, UNK) for w in self.split(t)[: self.max_len]]
            if ids:
                out[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def config(self) -> dict:
        return {"kind": "word", "vocab": self.vocab, "max_len": self.max_len}


def tokenizer_from_config(cfg: dict):
    if cfg.get("kind") == "char":
        return CharTokenizer(cfg["alphabet"], cfg["max_len"])
    if cfg.get("kind") == "word":
        return WordTokenizer(cfg["vocab"], cfg["max_len"])
    raise ValueError(f"unknown tokenizer kind {cfg.get('kind')!r}; expected 'char' or 'word'")


class CharCNN(nn.Module):
    """Character embedding -> two width-5 convolutions -> mean and max over positions -> linear.

    A small relative of Zhang et al. (2015): with ~2k training texts their deep
    stack overfits or does not train on a CPU budget, while two convolutions
    (detectors of character n-grams up to 9 long) pooled by both mean and max
    reach 88% on BBC News from the first 512 characters.
    """

    def __init__(self, vocab_size: int, classes: int, dim: int = 16, channels: int = 128, dropout: float = 0.3):
        super().__init__()
        self.config = {"vocab_size": vocab_size, "classes": classes, "dim": dim, "channels": channels, "dropout": dropout}
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.convs = nn.Sequential(nn.Conv1d(dim, channels, 5, padding=2), nn.ReLU(),
                                   nn.Conv1d(channels, channels, 5, padding=2), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * channels, classes))

    def _pool(self, h: Tensor, mask: Tensor) -> Tensor:
        h = self.convs(h.transpose(1, 2))
        m = mask[:, None, :]
        mean = (h * m).sum(2) / m.sum(2).clamp_min(1.0)
        return self.head(torch.cat([mean, h.masked_fill(m == 0, 0.0).amax(dim=2)], dim=1))

    def forward_one_hot(self, one_hot: Tensor) -> Tensor:
        """Logits from one-hot characters (N, L, vocab): differentiable in the characters."""
        return self._pool(one_hot @ self.embed.weight, 1.0 - one_hot[..., PAD].detach())

    def forward(self, ids: Tensor) -> Tensor:
        return self._pool(self.embed(ids), (ids != PAD).float())


class WordCNN(nn.Module):
    """Kim (2014): word embeddings, convolutions of widths 3/4/5, max over time, linear."""

    def __init__(self, vocab_size: int, classes: int, dim: int = 48, channels: int = 64, dropout: float = 0.5):
        super().__init__()
        self.config = {"vocab_size": vocab_size, "classes": classes, "dim": dim, "channels": channels, "dropout": dropout}
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.convs = nn.ModuleList(nn.Conv1d(dim, channels, k, padding=k - 1) for k in (3, 4, 5))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(3 * channels, classes))

    def forward(self, ids: Tensor) -> Tensor:
        h = self.embed(ids).transpose(1, 2)
        pooled = [torch.relu(c(h)).amax(dim=2) for c in self.convs]
        return self.head(torch.cat(pooled, dim=1))


ARCHITECTURES = {"CharCNN": CharCNN, "WordCNN": WordCNN}


def save_text_model(path: str | Path, model: nn.Module, tokenizer, label_names: list[str] | tuple[str, ...],
                    extra: dict | None = None, half: bool = True) -> Path:
    """Write ``<path>.safetensors`` and ``<path>.json``; returns the JSON path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arch = type(model).__name__
    if arch not in ARCHITECTURES:
        raise TypeError(f"model must be one of {sorted(ARCHITECTURES)}, got {arch}")
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path.with_suffix(".safetensors")))
    meta = {"architecture": arch, "config": model.config, "tokenizer": tokenizer.config(),
            "label_names": list(label_names), **(extra or {})}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return path.with_suffix(".json")


MAX_SIDECAR_BYTES = 64 << 20
#: sane upper limits checked before a model is allocated (a sidecar is untrusted input)
LIMITS = {"vocab_size": 2_000_000, "classes": 10_000, "dim": 4096, "channels": 4096, "max_len": 100_000}


def read_sidecar(path: str | Path) -> dict:
    """The JSON sidecar ``<path>.json`` of a saved text model, parsed (a JSON object, at most 64 MB)."""
    meta_path = Path(path).with_suffix(".json")
    if not meta_path.is_file():
        raise FileNotFoundError(f"expected {meta_path} (written by advx text train)")
    if meta_path.stat().st_size > MAX_SIDECAR_BYTES:
        raise ValueError(f"{meta_path} is {meta_path.stat().st_size} bytes; a text model sidecar is at most "
                         f"{MAX_SIDECAR_BYTES >> 20} MB")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{meta_path} is not valid JSON: {e}") from e
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path} must hold a JSON object, got {type(meta).__name__}")
    return meta


def check_sidecar(meta: dict, where: str = "sidecar") -> None:
    """Refuse a CharCNN/WordCNN sidecar whose sizes are absurd or inconsistent, before allocating anything."""
    cfg, tok = meta.get("config"), meta.get("tokenizer")
    if not isinstance(cfg, dict) or not isinstance(tok, dict):
        raise ValueError(f"{where}: needs 'config' and 'tokenizer' objects")
    allowed = {"vocab_size", "classes", "dim", "channels", "dropout"}
    if set(cfg) - allowed:
        raise ValueError(f"{where}: unknown config keys {sorted(set(cfg) - allowed)}")
    for key, v in cfg.items():
        if key == "dropout":
            if not isinstance(v, int | float) or isinstance(v, bool) or not 0 <= v < 1:
                raise ValueError(f"{where}: config.dropout must be a number in [0, 1), got {v!r}")
        elif type(v) is not int or not 1 <= v <= LIMITS[key]:
            raise ValueError(f"{where}: config.{key} must be an integer in [1, {LIMITS[key]:,}], got {v!r}")
    ml = tok.get("max_len")
    if type(ml) is not int or not 1 <= ml <= LIMITS["max_len"]:
        raise ValueError(f"{where}: tokenizer.max_len must be an integer in [1, {LIMITS['max_len']:,}], got {ml!r}")
    kind = tok.get("kind")
    items = tok.get("alphabet") if kind == "char" else tok.get("vocab") if kind == "word" else None
    if not isinstance(items, str | list):
        raise ValueError(f"{where}: tokenizer must be kind 'char' with an alphabet or 'word' with a vocab")
    if cfg.get("vocab_size") != len(items) + 2:
        raise ValueError(f"{where}: config.vocab_size is {cfg.get('vocab_size')!r} but the tokenizer has "
                         f"{len(items)} entries (+2 for padding and unknown)")
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != cfg.get("classes") or not all(isinstance(x, str) for x in names):
        raise ValueError(f"{where}: label_names must be a list of config.classes = {cfg.get('classes')!r} strings")


def load_text_model(path: str | Path):
    """(model in eval mode, tokenizer, metadata) from files written by :func:`save_text_model`.

    The sidecar is validated (sizes, consistency with the tokenizer, then the
    tensor shapes in the safetensors header) before the model is built.
    """
    path = Path(path)
    meta_path, weights_path = path.with_suffix(".json"), path.with_suffix(".safetensors")
    if not meta_path.is_file() or not weights_path.is_file():
        raise FileNotFoundError(f"expected {meta_path} and {weights_path} (written by advx text train)")
    meta = read_sidecar(path)
    arch = meta.get("architecture")
    if arch not in ARCHITECTURES:
        raise ValueError(f"{meta_path}: unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    check_sidecar(meta, str(meta_path))
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in ARCHITECTURES[arch](**meta["config"]).state_dict().items()}
    with safe_open(str(weights_path), "pt") as fh:
        have = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    if have != shapes:
        bad = sorted(k for k in set(have) | set(shapes) if have.get(k) != shapes.get(k))
        raise ValueError(f"{weights_path} does not match {meta_path}: tensors {bad[:4]} differ "
                         f"(expected {[shapes.get(k) for k in bad[:4]]}, found {[have.get(k) for k in bad[:4]]})")
    model = ARCHITECTURES[arch](**meta["config"])
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(weights_path)).items()}
    model.load_state_dict(state)
    return model.eval(), tokenizer_from_config(meta["tokenizer"]), meta
