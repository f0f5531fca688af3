"""Training the reference text classifiers, with optional adversarial augmentation.

Adversarial training for discrete inputs follows the augmentation recipe used
for text since Jia & Liang (2017) and TextAttack (Morris et al. 2020,
https://arxiv.org/abs/2005.05909): every ``attack_every`` epochs, attack a
random sample of the training set with the current model and add the
adversarial texts that succeeded, with their true labels, to the training data.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from advx.text.classifier import TorchTextClassifier
from advx.text.data import TextDataset
from advx.text.models import ARCHITECTURES, CharTokenizer, WordTokenizer

__all__ = ["TrainConfig", "TrainReport", "train_text_model", "accuracy"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    architecture: str = "CharCNN"  #: "CharCNN" or "WordCNN"
    max_len: int = 512  #: characters (CharCNN) or words (WordCNN) seen by the model
    vocab_size: int = 8000  #: WordCNN vocabulary (most frequent training words)
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    #: adversarial augmentation: an attack (classifier, texts, labels) -> list of TextAttackResult
    attack: Callable | None = None
    attack_every: int = 1  #: epochs between two rounds of adversarial augmentation
    attack_examples: int = 200  #: training texts attacked per round
    attack_start: int = 1  #: first epoch (0-based) that gets adversarial examples


@dataclass
class TrainReport:
    epochs: list[dict] = field(default_factory=list)
    adversarial_added: int = 0
    seconds: float = 0.0


def accuracy(clf, data: TextDataset, batch_size: int = 256) -> float:
    if len(data) == 0:
        return float("nan")
    correct = 0
    for i in range(0, len(data), batch_size):
        pred = clf.predict_proba(data.texts[i : i + batch_size]).argmax(1)
        correct += int((pred == torch.tensor(data.labels[i : i + batch_size])).sum())
    return correct / len(data)


def train_text_model(train: TextDataset, config: TrainConfig, test: TextDataset | None = None):
    """Train a fresh model on ``train``; returns (TorchTextClassifier, tokenizer, TrainReport)."""
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {config.architecture!r}")
    if len(train) == 0:
        raise ValueError("train is empty; pass a dataset with at least one example")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    if config.architecture == "CharCNN":
        tok = CharTokenizer(max_len=config.max_len)
    else:
        tok = WordTokenizer.build(train.texts, config.vocab_size, max_len=config.max_len)
    classes = len(train.label_names)
    model = ARCHITECTURES[config.architecture](tok.vocab_size, classes)
    clf = TorchTextClassifier(model, tok, label_names=train.label_names)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, pct_start=0.1, total_steps=config.epochs * (-(-2 * len(train) // config.batch_size)) + 10)
    texts, labels = list(train.texts), list(train.labels)
    report, t0 = TrainReport(), time.time()
    for epoch in range(config.epochs):
        if config.attack is not None and epoch >= config.attack_start and (epoch - config.attack_start) % config.attack_every == 0:
            added = _augment(clf, train, config, rng)
            texts += [t for t, _ in added]
            labels += [y for _, y in added]
            report.adversarial_added += len(added)
        model.train()
        order = list(range(len(texts)))
        rng.shuffle(order)
        total = 0.0
        for b in range(0, len(order), config.batch_size):
            idx = order[b : b + config.batch_size]
            x = tok([texts[i] for i in idx])
            y = torch.tensor([labels[i] for i in idx])
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched.last_epoch + 1 < sched.total_steps:
                sched.step()
            total += loss.item() * len(idx)
        model.eval()
        row = {"epoch": epoch + 1, "loss": total / len(order), "train_size": len(texts)}
        if test is not None:
            row["test_accuracy"] = accuracy(clf, test)
        report.epochs.append(row)
        log.info("epoch %d: %s", epoch + 1, row)
    report.seconds = time.time() - t0
    return clf, tok, report


def _augment(clf, train: TextDataset, config: TrainConfig, rng: random.Random) -> list[tuple[str, int]]:
    idx = rng.sample(range(len(train)), min(config.attack_examples, len(train)))
    results = config.attack(clf, [train.texts[i] for i in idx], [train.labels[i] for i in idx])
    added = [(r.perturbed, r.label) for r in results if r.status == "succeeded"]
    log.info("adversarial augmentation: %d of %d attacked training texts added", len(added), len(idx))
    return added
