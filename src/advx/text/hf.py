"""Any Hugging Face ``transformers`` sequence classifier as a target (optional extra).

``HuggingFaceClassifier("path/to/dir")`` (or ``--model hf:path/to/dir``) loads
``AutoModelForSequenceClassification`` and ``AutoTokenizer`` from a saved model
directory with ``local_files_only=True``: nothing is downloaded, so it works
offline. A hub id (``hf:distilbert-base-uncased-finetuned-sst-2-english``) is
resolved by ``transformers`` itself and needs a network the first time (then its
cache). ``pip install transformers`` (the ``hf`` extra) to use it.

Texts are tokenized in batches with padding to the longest text of the batch
and truncation to ``max_length`` tokens (default 128: the same on every side of
a comparison; transformers' own default is the model's 512). The model runs in
eval mode without parameter gradients; gradients with respect to the input
token embeddings (``inputs_embeds=``) serve the white-box attacks (HotFlip over
word pieces, GCG), with character offsets from a fast tokenizer mapping tokens
back to words.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from advx.model.hf import require_transformers
from advx.text.classifier import TorchTextClassifier

__all__ = ["HuggingFaceClassifier", "HFTokenizer"]


class HFTokenizer:
    """A ``transformers`` tokenizer as a callable from texts to model inputs, with character spans."""

    kind = "wordpiece"

    def __init__(self, tokenizer, max_length: int = 128):
        if int(max_length) < 2:
            raise ValueError(f"max_length must be >= 2 tokens, got {max_length}")
        self.tok, self.max_len = tokenizer, int(max_length)
        self.vocab_size = len(tokenizer)
        self.unk_id = tokenizer.unk_token_id

    def __call__(self, texts: list[str]) -> dict[str, Tensor]:
        return dict(self.tok(list(texts), padding=True, truncation=True, max_length=self.max_len, return_tensors="pt"))

    def spans(self, text: str) -> list[tuple[int, int] | None]:
        """Character span of each token (None for special tokens); needs a fast tokenizer."""
        if not getattr(self.tok, "is_fast", False):
            raise TypeError("white-box attacks on hf: models need a fast tokenizer (tokenizer.json) for the offsets")
        enc = self.tok(text, truncation=True, max_length=self.max_len, return_offsets_mapping=True,
                       return_special_tokens_mask=True)
        return [None if special else (int(a), int(b))
                for (a, b), special in zip(enc["offset_mapping"], enc["special_tokens_mask"])]

    def piece_ids(self, word: str) -> list[int]:
        return list(self.tok(word, add_special_tokens=False)["input_ids"])


class HuggingFaceClassifier(TorchTextClassifier):
    """``AutoModelForSequenceClassification`` + ``AutoTokenizer`` from a directory (offline) or a hub id."""

    def __init__(self, path: str | Path, max_length: int = 128, batch_size: int = 32,
                 device: str | torch.device = "cpu"):
        tf = require_transformers()
        local = Path(path).is_dir()
        if not local and (Path(path).exists() or str(path).startswith((".", "/", "~"))):
            raise FileNotFoundError(f"hf:{path} is not a directory holding a saved transformers model "
                                    "(config.json, the weights and the tokenizer files)")
        if local and not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(f"hf:{path} has no config.json; save the model with save_pretrained(dir) "
                                    "and its tokenizer with tokenizer.save_pretrained(dir)")
        try:
            tf.utils.logging.disable_progress_bar()  # no "Loading weights" bar in the middle of advx's output
            tok = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=local)
            model = tf.AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=local)
        except OSError as e:
            where = "the directory" if local else "the hub (needs a network) or the local cache"
            raise FileNotFoundError(f"hf:{path}: could not load a sequence classifier and its tokenizer from "
                                    f"{where}: {e}") from e
        model = model.to(device).eval()
        id2label = getattr(model.config, "id2label", None) or {}
        names = [str(id2label[i]) for i in sorted(id2label)] if id2label else None
        self.source = str(path)
        super().__init__(model, HFTokenizer(tok, max_length), batch_size=batch_size, device=device, label_names=names)
