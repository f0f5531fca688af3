"""Reference text classifiers: names, training recipes, committed weights.

========================  =======  ========  =============================
name                      data     classes   model
========================  =======  ========  =============================
``bbc-charcnn``           BBC      5         CharCNN, first 512 characters
``bbc-wordcnn``           BBC      5         WordCNN, first 400 words, 8k vocab
``tweets-charcnn``        tweets   2         CharCNN, 160 characters
``tweets-wordcnn``        tweets   2         WordCNN, 64 words, 5k vocab
``minilm-tweets``         tweets   2         MiniLM-L6, top layer + head fine-tuned, 64 word pieces
``minilm-bbc``            BBC      5         MiniLM-L6, top layer + head fine-tuned, 128 word pieces
========================  =======  ========  =============================

The MiniLM models store only their fine-tuned top layer and head (float16,
a few MB); the rest is the packaged all-MiniLM-L6-v2 encoder
(:mod:`advx.text.transformer`).

``advx text train --model NAME`` retrains one from scratch with the recipe
below; the committed weights under ``advx/text/weights`` were made that way,
and their JSON records the clean test accuracy and the training time.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from advx.text.classifier import TorchTextClassifier
from advx.text.data import load_text_dataset
from advx.text.models import load_text_model, save_text_model
from advx.text.train import TrainConfig, TrainReport, accuracy, train_text_model

__all__ = ["ZOO", "ZooSpec", "load_reference", "resolve_model", "train_reference", "WEIGHTS_DIR"]

log = logging.getLogger(__name__)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ZooSpec:
    dataset: str
    config: TrainConfig


ZOO: dict[str, ZooSpec] = {
    "bbc-charcnn": ZooSpec("bbc", TrainConfig(architecture="CharCNN", max_len=512, epochs=6)),
    "bbc-wordcnn": ZooSpec("bbc", TrainConfig(architecture="WordCNN", max_len=400, vocab_size=8000, epochs=10, lr=5e-3)),
    "tweets-charcnn": ZooSpec("tweets", TrainConfig(architecture="CharCNN", max_len=160, epochs=8)),
    "tweets-wordcnn": ZooSpec("tweets", TrainConfig(architecture="WordCNN", max_len=64, vocab_size=5000, epochs=8)),
    "minilm-tweets": ZooSpec("tweets", TrainConfig(architecture="MiniLM", max_len=64, epochs=4, lr=2e-4,
                                                   batch_size=32, weight_decay=0.01)),
    "minilm-bbc": ZooSpec("bbc", TrainConfig(architecture="MiniLM", max_len=128, epochs=4, lr=2e-4,
                                             batch_size=32, weight_decay=0.01)),
}


def _classifier(path: Path) -> tuple[TorchTextClassifier, dict]:
    from advx.text.models import read_sidecar

    meta = read_sidecar(path)
    if meta.get("architecture") == "MiniLMClassifier":
        from advx.text.transformer import load_minilm

        model, tok, meta = load_minilm(path)
        return TorchTextClassifier(model, tok, label_names=meta["label_names"], batch_size=64), meta
    model, tok, meta = load_text_model(path)
    return TorchTextClassifier(model, tok, label_names=meta["label_names"]), meta


def load_reference(name: str) -> tuple[TorchTextClassifier, dict]:
    """(classifier, metadata) of a committed reference model."""
    if name not in ZOO:
        raise ValueError(f"unknown text model {name!r}; choose one of {sorted(ZOO)} or pass a path to a .json")
    return _classifier(WEIGHTS_DIR / name)


def resolve_model(name_or_path: str, max_length: int | None = None) -> tuple[TorchTextClassifier, dict]:
    """A zoo name, ``hf:<dir or hub id>`` (a transformers sequence classifier), or a path to a model
    saved by ``advx text train`` (``x.json`` + ``x.safetensors``).

    ``max_length`` (tokens) applies to ``hf:`` models (default 128).
    """
    if name_or_path.startswith("hf:"):
        from advx.text.hf import HuggingFaceClassifier

        clf = HuggingFaceClassifier(name_or_path[3:], max_length=max_length or 128)
        names = list(clf.label_names) if clf.label_names else None
        return clf, {"name": name_or_path, "label_names": names, "dataset": None, "max_length": clf.tokenizer.max_len}
    if name_or_path in ZOO:
        return load_reference(name_or_path)
    path = Path(name_or_path)
    if path.suffix in (".json", ".safetensors") or path.with_suffix(".json").is_file():
        return _classifier(path.with_suffix(""))
    raise ValueError(f"--model must be one of {sorted(ZOO)}, hf:<directory or hub id>, or the path of a saved text model (.json), "
                     f"got {name_or_path!r}")


def train_reference(name: str, out: str | Path | None = None, **overrides) -> tuple[TorchTextClassifier, dict, TrainReport]:
    """Train zoo model ``name`` (with TrainConfig ``overrides``) and save it to ``out`` (default: the zoo)."""
    if name not in ZOO:
        raise ValueError(f"unknown text model {name!r}; choose one of {sorted(ZOO)}")
    spec = ZOO[name]
    config = replace(spec.config, **overrides)
    train, test = load_text_dataset(spec.dataset, "train"), load_text_dataset(spec.dataset, "test")
    t0 = time.time()
    clf, tok, report = train_text_model(train, config, test if config.architecture != "MiniLM" else None)
    acc = accuracy(clf, test) if config.architecture != "MiniLM" else float("nan")  # MiniLM: measured after reload
    meta = {"name": name, "dataset": spec.dataset, "test_accuracy": round(acc, 4), "test_size": len(test),
            "train_size": len(train), "epochs": config.epochs, "train_seconds": round(time.time() - t0, 1),
            "adversarial_examples_added": report.adversarial_added}
    path = Path(out) if out is not None else WEIGHTS_DIR / name
    path = path.with_suffix("") if path.suffix == ".json" else path
    if config.architecture == "MiniLM":
        from advx.text.transformer import save_minilm

        meta.update(trained_layers=config.trained_layers, lr=config.lr, batch_size=config.batch_size, seed=config.seed,
                    max_len=config.max_len, history=report.epochs)
        save_minilm(path, clf.model, tok, train.label_names, meta)
        clf, meta = _classifier(path)  # the accuracy of what was stored (float16), not of the float32 model in memory
        meta["test_accuracy"] = round(accuracy(clf, test), 4)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    else:
        save_text_model(path, clf.model, tok, train.label_names, meta)
    log.info("%s: test accuracy %.4f, saved to %s", name, meta["test_accuracy"], path)
    return clf, meta, report
