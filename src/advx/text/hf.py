"""Adapter for Hugging Face ``transformers`` sequence classifiers (optional extra).

Loads a local model directory only (``local_files_only=True``): nothing is
downloaded, so it works offline. ``pip install transformers`` to use it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from advx.text.classifier import TorchTextClassifier

__all__ = ["HuggingFaceClassifier"]


class HuggingFaceClassifier(TorchTextClassifier):
    """``AutoModelForSequenceClassification`` + ``AutoTokenizer`` from a local directory."""

    def __init__(self, path: str | Path, max_length: int = 256, batch_size: int = 32,
                 device: str | torch.device = "cpu"):
        try:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as e:
            raise ImportError("HuggingFaceClassifier needs the optional dependency transformers: "
                              "pip install transformers") from e
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a directory holding a saved transformers model")
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True).to(device).eval()

        def tokenize(texts: list[str]) -> dict:
            return dict(tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"))

        id2label = getattr(model.config, "id2label", None) or {}
        names = [id2label[i] for i in sorted(id2label)] if id2label else None
        super().__init__(model, tokenize, batch_size=batch_size, device=device, label_names=names)
