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

__all__ = ["TrainConfig", "TrainReport", "train_text_model", "train_minilm", "accuracy"]

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
    trained_layers: int = 1  #: MiniLM: top encoder layers fine-tuned (the rest stay frozen, their output cached)
    head_lr: float | None = None  #: MiniLM: learning rate of the head (default 10 * lr)


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
    if config.architecture == "MiniLM":
        return train_minilm(train, config, test)
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES) + ['MiniLM']}, got {config.architecture!r}")
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
        added = _augment(clf, train, config, rng, epoch, report)
        texts += [t for t, _ in added]
        labels += [y for _, y in added]
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


def _augment(clf, train: TextDataset, config: TrainConfig, rng: random.Random, epoch: int,
             report: TrainReport) -> list[tuple[str, int]]:
    """The adversarial (text, true label) pairs to add at the start of ``epoch`` ([] when none are due)."""
    if config.attack is None or epoch < config.attack_start or (epoch - config.attack_start) % config.attack_every:
        return []
    idx = rng.sample(range(len(train)), min(config.attack_examples, len(train)))
    results = config.attack(clf, [train.texts[i] for i in idx], [train.labels[i] for i in idx])
    added = [(r.perturbed, r.label) for r in results if r.status == "succeeded"]
    log.info("adversarial augmentation: %d of %d attacked training texts added", len(added), len(idx))
    report.adversarial_added += len(added)
    return added


def train_minilm(train: TextDataset, config: TrainConfig, test: TextDataset | None = None):
    """Fine-tune the top ``config.trained_layers`` layers of MiniLM-L6 and a linear head on ``train``.

    The frozen layers below run once per text (their outputs are cached, so an
    epoch costs only the top layers); AdamW, linear warm-up then linear decay,
    cross-entropy. Returns (TorchTextClassifier, tokenizer, TrainReport).
    """
    from advx.text.minilm import BertEncoder, minilm_dir
    from advx.text.transformer import MiniLMClassifier, MiniLMTokenizer

    if len(train) == 0:
        raise ValueError("train is empty; pass a dataset with at least one example")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    tok = MiniLMTokenizer(config.max_len)
    model = MiniLMClassifier(BertEncoder.from_dir(minilm_dir()), len(train.label_names), config.trained_layers)
    clf = TorchTextClassifier(model, tok, label_names=train.label_names, batch_size=64)
    params = [p for p in model.encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": params, "lr": config.lr},
                             {"params": model.head.parameters(), "lr": config.head_lr or 10 * config.lr}],
                            weight_decay=config.weight_decay)
    steps = config.epochs * -(-len(train) // config.batch_size) * (2 if config.attack is not None else 1)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min((t + 1) / warm, max(0.0, (steps - t) / max(1, steps - warm))))
    feats: list[torch.Tensor] = []

    def cache(texts: list[str]) -> None:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: dict[int, torch.Tensor] = {}
        with torch.no_grad():
            model.eval()
            for b in range(0, len(order), 64):
                idx = order[b : b + 64]
                enc = tok([texts[i] for i in idx])
                h = model.lower(enc["input_ids"], enc["attention_mask"])
                for r, i in enumerate(idx):
                    out[i] = h[r, : int(enc["attention_mask"][r].sum())].clone()
        feats.extend(out[i] for i in range(len(texts)))

    t0 = time.time()
    cache(train.texts)
    log.info("cached the frozen layers' outputs for %d texts in %.0f s", len(train), time.time() - t0)
    labels = list(train.labels)
    report = TrainReport()
    for epoch in range(config.epochs):
        added = _augment(clf, train, config, rng, epoch, report)
        cache([t for t, _ in added])
        labels += [y for _, y in added]
        model.train()
        order = list(range(len(feats)))
        rng.shuffle(order)
        total = 0.0
        for b in range(0, len(order), config.batch_size):
            idx = order[b : b + config.batch_size]
            h = nn.utils.rnn.pad_sequence([feats[i] for i in idx], batch_first=True)
            lengths = torch.tensor([len(feats[i]) for i in idx])
            mask = (torch.arange(h.shape[1])[None] < lengths[:, None]).long()
            loss = nn.functional.cross_entropy(model.upper(h, mask), torch.tensor([labels[i] for i in idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched.last_epoch + 1 < steps:
                sched.step()
            total += loss.item() * len(idx)
        model.eval()
        row = {"epoch": epoch + 1, "loss": total / len(order), "train_size": len(feats),
               "seconds": round(time.time() - t0, 1)}
        if test is not None:
            row["test_accuracy"] = accuracy(clf, test)
        report.epochs.append(row)
        log.info("epoch %d: %s", epoch + 1, row)
    report.seconds = time.time() - t0
    return clf, tok, report
