"""Reference text classifiers: names, training recipes, committed weights.

========================  =======  ========  =============================
name                      data     classes   model
========================  =======  ========  =============================
``bbc-charcnn``           BBC      5         CharCNN, first 512 characters
``bbc-wordcnn``           BBC      5         WordCNN, first 400 words, 8k vocab
``tweets-charcnn``        tweets   2         CharCNN, 160 characters
``tweets-wordcnn``        tweets   2         WordCNN, 64 words, 5k vocab
========================  =======  ========  =============================

``advx text train --model NAME`` retrains one from scratch with the recipe
below; the committed weights under ``advx/text/weights`` were made that way,
and their JSON records the clean test accuracy and the training time.
"""

from __future__ import annotations

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
}


def _classifier(path: Path) -> tuple[TorchTextClassifier, dict]:
    model, tok, meta = load_text_model(path)
    return TorchTextClassifier(model, tok, label_names=meta["label_names"]), meta


def load_reference(name: str) -> tuple[TorchTextClassifier, dict]:
    """(classifier, metadata) of a committed reference model."""
    if name not in ZOO:
        raise ValueError(f"unknown text model {name!r}; choose one of {sorted(ZOO)} or pass a path to a .json")
    return _classifier(WEIGHTS_DIR / name)


def resolve_model(name_or_path: str) -> tuple[TorchTextClassifier, dict]:
    """A zoo name, or a path to a model saved by ``advx text train`` (``x.json`` + ``x.safetensors``)."""
    if name_or_path in ZOO:
        return load_reference(name_or_path)
    path = Path(name_or_path)
    if path.suffix in (".json", ".safetensors") or path.with_suffix(".json").is_file():
        return _classifier(path.with_suffix(""))
    raise ValueError(f"--model must be one of {sorted(ZOO)} or the path of a saved text model (.json), "
                     f"got {name_or_path!r}")


def train_reference(name: str, out: str | Path | None = None, **overrides) -> tuple[TorchTextClassifier, dict, TrainReport]:
    """Train zoo model ``name`` (with TrainConfig ``overrides``) and save it to ``out`` (default: the zoo)."""
    if name not in ZOO:
        raise ValueError(f"unknown text model {name!r}; choose one of {sorted(ZOO)}")
    spec = ZOO[name]
    config = replace(spec.config, **overrides)
    train, test = load_text_dataset(spec.dataset, "train"), load_text_dataset(spec.dataset, "test")
    t0 = time.time()
    clf, tok, report = train_text_model(train, config, test)
    acc = accuracy(clf, test)
    meta = {"name": name, "dataset": spec.dataset, "test_accuracy": round(acc, 4), "test_size": len(test),
            "train_size": len(train), "epochs": config.epochs, "train_seconds": round(time.time() - t0, 1),
            "adversarial_examples_added": report.adversarial_added}
    path = Path(out) if out is not None else WEIGHTS_DIR / name
    save_text_model(path.with_suffix("") if path.suffix == ".json" else path, clf.model, tok, train.label_names, meta)
    log.info("%s: test accuracy %.4f, saved to %s", name, acc, path)
    return clf, meta, report
